import pytest

from hwprune.errors import TargetError
from hwprune.targets import available_targets, get_target, parse_target


def test_shipped_targets_parse():
    targets = available_targets()
    assert {"host", "stm32l4r5", "nrf52840", "xc7z020"} <= set(targets)
    stm = targets["stm32l4r5"]
    assert stm.flash_bytes == 2048 * 1024 and stm.clock_mhz == 120
    # The MLPerf Tiny anchor: 294 uJ at 146 inferences/s, 120 MHz.
    assert stm.energy_nj_per_cycle == pytest.approx(294e3 / (120e6 / 146), rel=2e-3)


@pytest.mark.parametrize(
    "text, message",
    [
        ('name = "x"\nkind = "mcu"\ndescription = "d"\nflash_kb = 3\n', "unknown key 'flash_kb'; units are part of the key names: did you mean 'flash_kib'?"),
        ('name = "x"\nkind = "gpu"\ndescription = "d"\n', "kind 'gpu'"),
        ('name = "x"\nkind = "host"\ndescription = "d"\ndsp = 3\n', "do not apply"),
        ('name = "x"\nkind = "mcu"\ndescription = "d"\ncpu = "m4"\n', "needs"),
        ('name = "x"\nkind = ', "not valid TOML"),
    ],
)
def test_bad_target_files(tmp_path, text, message):
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(TargetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_target(path)


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(TargetError, match="available targets: .*stm32l4r5"):
        get_target("pdp11")


def test_cortex_m_targets_cover_every_core_with_cited_energy():
    targets = available_targets()
    cores = {t.cpu for t in targets.values() if t.kind == "mcu"}
    assert {"cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m33"} <= cores
    for t in targets.values():
        if t.kind == "mcu":
            assert t.energy_source and 0.01 < t.energy_nj_per_cycle < 2.0, t.name
            if t.run_current_ua_per_mhz is not None:
                assert t.energy_nj_per_cycle == pytest.approx(t.run_current_ua_per_mhz * t.supply_v / 1000, rel=0.01)


_MCU = 'name = "x"\nkind = "mcu"\ndescription = "d"\ncpu = "cortex-m4"\nram_kib = 8\nclock_mhz = 16\n'


@pytest.mark.parametrize(
    "text, message",
    [
        (_MCU + 'flash_kib = "64 KiB"\nenergy_nj_per_cycle = 0.2\n', "flash_kib = '64 KiB' must be a positive integer in the key's unit (KiB)"),
        (_MCU + 'flash_kib = 64\nenergy_nj_per_cycle = "0.2 nJ"\n', "must be a positive number"),
        (_MCU.replace("cortex-m4", "cortex-m5") + "flash_kib = 64\nenergy_nj_per_cycle = 0.2\n", "unknown core"),
        (_MCU + "flash_kib = 64\nenergy_nj_per_cycle = 0.2\nrun_current_ua_per_mhz = 100.0\nsupply_v = 3.3\n",
         "run_current_ua_per_mhz x supply_v"),
        (_MCU + "flash_kib = 64\nenergy_nj_per_cycle = 0.2\nsupply_v = 3.3\n", "together"),
    ],
)
def test_bad_mcu_values(tmp_path, text, message):
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(TargetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_target(path)


def test_a_target_can_be_a_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(_MCU + "flash_kib = 64\nenergy_nj_per_cycle = 0.2\n")
    assert get_target(str(path)).name == "x"
    with pytest.raises(TargetError, match="does not exist"):
        get_target(str(tmp_path / "missing.toml"))


def test_fpga_targets_name_their_full_part_number():
    from hwprune.hls4ml_options import check_part

    parts = {n: t.part for n, t in available_targets().items() if t.kind == "fpga" and t.family not in LATTICE_GOWIN}
    assert parts == {"xc7a35t": "xc7a35tcpg236-1", "xc7z020": "xc7z020clg400-1", "xcvu9p": "xcvu9p-flga2104-2L-e"}
    for name, part in parts.items():
        assert part.lower().startswith(name) and check_part(part) == part


LATTICE_GOWIN = ("ecp5", "ice40", "gowin")


def test_lattice_and_gowin_targets_name_what_nextpnr_places():
    targets = {n: t for n, t in available_targets().items() if t.family in LATTICE_GOWIN}
    assert set(targets) == {"lfe5u85f", "ice40up5k", "gw1nr9"}
    for t in targets.values():
        assert t.part is None and t.device and t.io_pins and t.bram_kbit and "datasheet" in t.resource_source
    assert targets["lfe5u85f"].lut == 83640 and targets["lfe5u85f"].speed_grade == 6


_FPGA = 'name = "x"\nkind = "fpga"\ndescription = "d"\nclock_mhz = 100\nlut = 1\nff = 1\ndsp = 1\nbram_36k = 1\n'


@pytest.mark.parametrize(
    "extra, message",
    [
        ('part = "xc9z999"\n', "part = 'xc9z999' is not an AMD/Xilinx part number"),
        ('strategy = "fast"\n', "strategy = 'fast' must be one of latency, resource, da"),
        ('strategy = "da"\nreuse_factor = 2\n', "reuse_factor must be 1"),
        ('reuse_factor = "4"\n', "reuse_factor = '4' must be a positive integer"),
        ('reuse_factor = 0\n', "reuse_factor = 0 must be a positive integer"),
        ('io_type = "io_stream"\n', "io_type = 'io_stream' must be one of parallel, stream"),
        ("reuse = 2\n", "unknown key 'reuse'; did you mean 'reuse_factor'?"),
    ],
)
def test_bad_fpga_defaults(tmp_path, extra, message):
    path = tmp_path / "x.toml"
    path.write_text(_FPGA + extra)
    with pytest.raises(TargetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_target(path)


def test_fpga_defaults_parse_and_stay_out_of_other_kinds(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text(_FPGA + 'part = "xcku5p-ffvb676-2-e"\nstrategy = "resource"\nreuse_factor = 4\nio_type = "stream"\n')
    t = parse_target(path)
    assert (t.part, t.strategy, t.reuse_factor, t.io_type) == ("xcku5p-ffvb676-2-e", "resource", 4, "stream")
    path.write_text(_MCU + 'flash_kib = 64\nenergy_nj_per_cycle = 0.2\npart = "xc7z020clg400-1"\n')
    with pytest.raises(TargetError, match=r"keys \['part'\] do not apply to a target of kind 'mcu'"):
        parse_target(path)
