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
