"""Target chips, one TOML file each in ``targets/``, parsed into frozen dataclasses.

Units are in the key names. An unknown key is an error (a typo must not silently fall
back to a default), and so is a key that does not belong to the target's kind, a value
of the wrong type (``flash_kib = "1 MB"``: the unit belongs in the key) and an unknown
Cortex-M core. ``get_target`` takes a name from ``targets/`` or a path to a TOML file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

from hwprune.errors import OptionError, TargetError
from hwprune.hls4ml_options import IO_NAMES, STRATEGIES, check_part
from hwprune.paths import targets_dir

KINDS = ("host", "mcu", "fpga")
#: The Cortex-M cores the cross build and the emulator know (hwprune.harness.cross.CORES).
MCU_CORES = ("cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m33")
_OPTIONAL = {"energy_source", "resource_source", "run_current_ua_per_mhz", "supply_v", "family",
             "part", "strategy", "reuse_factor", "io_type", "device", "device_family", "package", "speed_grade",
             "io_pins", "bram_kbit"}
_KEYS_BY_KIND = {
    "host": set(),
    "mcu": {"cpu", "flash_kib", "ram_kib", "clock_mhz", "energy_nj_per_cycle", "energy_source",
            "run_current_ua_per_mhz", "supply_v"},
    # part: the full AMD part number for hls4ml; strategy, reuse_factor, io_type: the hls4ml
    # defaults for this chip (export --backend hls4ml and resources; the command line overrides)
    # device, device_family, package, speed_grade: the Lattice/Gowin part as nextpnr names it
    # (hwprune.fpga.pnr); io_pins: user I/O of that package; bram_kbit: block RAM as the
    # vendor counts it (bram_36k is then its 36 Kb equivalent)
    "fpga": {"clock_mhz", "lut", "ff", "dsp", "bram_36k", "resource_source", "family", "part", "strategy",
             "reuse_factor", "io_type", "device", "device_family", "package", "speed_grade", "io_pins", "bram_kbit"},
}
_INTEGER_KEYS = {"flash_kib", "ram_kib", "lut", "ff", "dsp", "bram_36k", "reuse_factor", "speed_grade", "io_pins",
                 "bram_kbit"}
_NUMBER_KEYS = {"clock_mhz", "energy_nj_per_cycle", "run_current_ua_per_mhz", "supply_v"}
_UNITS = {"flash_kib": "KiB", "ram_kib": "KiB", "clock_mhz": "MHz", "energy_nj_per_cycle": "nJ per cycle",
          "run_current_ua_per_mhz": "uA per MHz", "supply_v": "V", "lut": "LUTs", "ff": "flip-flops",
          "dsp": "DSP slices", "bram_36k": "36 Kb block RAMs", "io_pins": "user I/O pins", "bram_kbit": "Kbit"}


@dataclass(frozen=True)
class Target:
    name: str
    kind: str
    description: str
    cpu: Optional[str] = None
    flash_kib: Optional[int] = None
    ram_kib: Optional[int] = None
    clock_mhz: Optional[float] = None
    energy_nj_per_cycle: Optional[float] = None
    energy_source: Optional[str] = None
    run_current_ua_per_mhz: Optional[float] = None  # the datasheet figure behind energy_nj_per_cycle
    supply_v: Optional[float] = None
    lut: Optional[int] = None
    ff: Optional[int] = None
    dsp: Optional[int] = None
    bram_36k: Optional[int] = None
    resource_source: Optional[str] = None
    #: FPGA family ("7series" or "ultrascale+"): DSP width and the yosys mapping. Optional.
    family: Optional[str] = None
    #: FPGA: the full AMD part number (package and speed grade) an hls4ml project is built for
    part: Optional[str] = None
    #: FPGA: hls4ml defaults for this chip (latency|resource|da, >= 1, parallel|stream)
    strategy: Optional[str] = None
    reuse_factor: Optional[int] = None
    io_type: Optional[str] = None
    #: FPGA, Lattice/Gowin: the vendor's part number (e.g. LFE5U-85F-6BG381C), its family as
    #: nextpnr-himbaechel names it (GW1N-9C), the package and speed grade nextpnr places for
    device: Optional[str] = None
    device_family: Optional[str] = None
    package: Optional[str] = None
    speed_grade: Optional[int] = None
    #: FPGA: the package's user I/O pins; block RAM in Kbit as the datasheet gives it
    io_pins: Optional[int] = None
    bram_kbit: Optional[int] = None

    @property
    def flash_bytes(self) -> Optional[int]:
        return None if self.flash_kib is None else self.flash_kib * 1024

    @property
    def ram_bytes(self) -> Optional[int]:
        return None if self.ram_kib is None else self.ram_kib * 1024


def parse_target(path: Path) -> Target:
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise TargetError(f"{path}: not a target .toml file (not UTF-8 text)") from None
    return target_from_dict(data, path)


def target_from_dict(data, path) -> Target:
    """A Target from a target file's keys (``path`` names where they came from), checked as a file is."""
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise TargetError(f"{path}: a target is a table of keys, got {type(data).__name__}")
    known = {f.name for f in fields(Target)}
    unknown = set(data) - known
    if unknown:
        key = sorted(unknown)[0]
        stem = key.split("_")[0]
        with_unit = [k for k in sorted(known) if k.startswith(f"{stem}_")]
        hint = (f"; units are part of the key names: did you mean {with_unit[0]!r}?" if with_unit and with_unit[0] in _UNITS
                else f"; did you mean {with_unit[0]!r}?" if with_unit else f"; known keys are {sorted(known)}")
        raise TargetError(f"{path}: unknown key {key!r}{hint}")
    for key in ("name", "kind", "description"):
        if key not in data:
            raise TargetError(f"{path}: missing key {key!r}")
    kind = data["kind"]
    if kind not in KINDS:
        raise TargetError(f"{path}: kind {kind!r} is not one of {list(KINDS)}")
    misplaced = set(data) - {"name", "kind", "description"} - _KEYS_BY_KIND[kind]
    if misplaced:
        raise TargetError(f"{path}: keys {sorted(misplaced)} do not apply to a target of kind {kind!r}")
    missing = _KEYS_BY_KIND[kind] - _OPTIONAL - set(data)
    if missing:
        raise TargetError(f"{path}: a {kind} target needs {sorted(missing)}")
    for key, value in data.items():
        _check_value(path, key, value)
    if kind == "mcu" and data["cpu"] not in MCU_CORES:
        raise TargetError(f"{path}: unknown core cpu = {data['cpu']!r}; known cores are {', '.join(MCU_CORES)}")
    if kind == "fpga":
        _check_hls_defaults(path, data)
    current, volts = data.get("run_current_ua_per_mhz"), data.get("supply_v")
    if (current is None) != (volts is None):
        raise TargetError(f"{path}: give run_current_ua_per_mhz and supply_v together (energy = their product)")
    if current is not None:
        derived = current * volts / 1000.0
        if abs(derived - data["energy_nj_per_cycle"]) > 0.01 * derived:
            raise TargetError(f"{path}: energy_nj_per_cycle = {data['energy_nj_per_cycle']} but "
                              f"run_current_ua_per_mhz x supply_v / 1000 = {derived:.4f}")
    return Target(**data)


def _check_value(path, key: str, value) -> None:
    if key in _INTEGER_KEYS:
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        what = "a positive integer"
    elif key in _NUMBER_KEYS:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        what = "a positive number"
    else:
        ok = isinstance(value, str)
        what = "a string"
    if not ok:
        unit = _UNITS.get(key, "")
        hint = f" in the key's unit ({unit}); the unit belongs in the key name, not the value" if unit else ""
        raise TargetError(f"{path}: {key} = {value!r} must be {what}{hint}")


def _check_hls_defaults(path, data: dict) -> None:
    """An FPGA target's part and hls4ml defaults, checked as the command line checks them."""
    if "part" in data:
        try:
            check_part(data["part"])
        except OptionError:
            raise TargetError(f"{path}: part = {data['part']!r} is not an AMD/Xilinx part number "
                              "(e.g. xc7z020clg400-1: device, package, speed grade)") from None
    if "strategy" in data and data["strategy"] not in STRATEGIES:
        raise TargetError(f"{path}: strategy = {data['strategy']!r} must be one of {', '.join(STRATEGIES)}")
    if data.get("strategy") == "da" and data.get("reuse_factor", 1) != 1:
        raise TargetError(f"{path}: strategy = 'da' (distributed arithmetic) is fully parallel: reuse_factor must be 1")
    if "io_type" in data and data["io_type"] not in IO_NAMES:
        raise TargetError(f"{path}: io_type = {data['io_type']!r} must be one of {', '.join(IO_NAMES)}")


def available_targets(directory: Path | None = None) -> dict[str, Target]:
    directory = Path(directory) if directory else targets_dir()
    targets = {}
    for path in sorted(directory.glob("*.toml")):
        target = parse_target(path)
        if target.name != path.stem:
            raise TargetError(f"{path}: name {target.name!r} must match the file name {path.stem!r}")
        targets[target.name] = target
    return targets


#: The chip an export compares its sizes with when none is named (it is not emulated then).
DEFAULT_TARGET = "stm32l4r5"

def get_target(name: str) -> Target:
    """A target by name (``targets/NAME.toml``) or by the path of a TOML file."""
    if str(name).endswith(".toml") or "/" in str(name):
        path = Path(name)
        if path.is_dir():
            raise TargetError(f"target {path} is a folder; give a target name or a target .toml file")
        if not path.is_file():
            raise TargetError(f"target file {path} does not exist")
        return parse_target(path)
    targets = available_targets()
    if name not in targets:
        raise TargetError(f"unknown target {name!r}; available targets: {', '.join(sorted(targets))}")
    return targets[name]


def export_target(meta: dict, override: Optional[str] = None) -> tuple[Target, bool]:
    """The export's target and whether the user chose it (``--target``) rather than the default."""
    if override:
        return get_target(override), True
    spec = meta.get("target_spec")
    if spec is not None:  # a target file's keys, stored by export: checked as the file was
        return target_from_dict({k: v for k, v in spec.items() if v is not None} if isinstance(spec, dict) else spec,
                                "export.json: target_spec"), True
    return get_target(meta.get("target") or DEFAULT_TARGET), bool(meta.get("target_given"))


def check_fit(report: dict, target: Target) -> None:
    """TargetError naming the figures when the export does not fit the target's flash or RAM."""
    if target.kind != "mcu" or report.get("flash_bytes") is None:
        return
    over = []
    if report["flash_bytes"] > target.flash_bytes:
        over.append(f"flash {report['flash_bytes']} B > {target.flash_bytes} B")
    if report["ram_bytes"] > target.ram_bytes:
        over.append(f"RAM {report['ram_bytes']} B > {target.ram_bytes} B")
    if over:
        raise TargetError(f"the model does not fit {target.name} ({target.description}): {', '.join(over)}; "
                          "prune harder, use fewer bits or a larger target")
