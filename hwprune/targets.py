"""Target chips, one TOML file each in ``targets/``, parsed into frozen dataclasses.

Units are in the key names. An unknown key is an error (a typo must not silently fall
back to a default), and so is a key that does not belong to the target's kind.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

from hwprune.errors import TargetError
from hwprune.paths import targets_dir

KINDS = ("host", "mcu", "fpga")
_KEYS_BY_KIND = {
    "host": set(),
    "mcu": {"cpu", "flash_kib", "ram_kib", "clock_mhz", "energy_nj_per_cycle", "energy_source"},
    "fpga": {"clock_mhz", "lut", "ff", "dsp", "bram_36k", "resource_source", "family"},
}


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
    lut: Optional[int] = None
    ff: Optional[int] = None
    dsp: Optional[int] = None
    bram_36k: Optional[int] = None
    resource_source: Optional[str] = None
    #: FPGA family ("7series" or "ultrascale+"): DSP width and the yosys mapping. Optional.
    family: Optional[str] = None

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
    known = {f.name for f in fields(Target)}
    unknown = set(data) - known
    if unknown:
        raise TargetError(f"{path}: unknown keys {sorted(unknown)}; known keys are {sorted(known)}")
    for key in ("name", "kind", "description"):
        if key not in data:
            raise TargetError(f"{path}: missing key {key!r}")
    kind = data["kind"]
    if kind not in KINDS:
        raise TargetError(f"{path}: kind {kind!r} is not one of {list(KINDS)}")
    misplaced = set(data) - {"name", "kind", "description"} - _KEYS_BY_KIND[kind]
    if misplaced:
        raise TargetError(f"{path}: keys {sorted(misplaced)} do not apply to a target of kind {kind!r}")
    missing = {k for k in _KEYS_BY_KIND[kind] if not k.endswith("_source") and k != "family"} - set(data)
    if missing:
        raise TargetError(f"{path}: a {kind} target needs {sorted(missing)}")
    return Target(**data)


def available_targets(directory: Path | None = None) -> dict[str, Target]:
    directory = Path(directory) if directory else targets_dir()
    targets = {}
    for path in sorted(directory.glob("*.toml")):
        target = parse_target(path)
        if target.name != path.stem:
            raise TargetError(f"{path}: name {target.name!r} must match the file name {path.stem!r}")
        targets[target.name] = target
    return targets


def get_target(name: str) -> Target:
    targets = available_targets()
    if name not in targets:
        raise TargetError(f"unknown target {name!r}; available targets: {', '.join(sorted(targets))}")
    return targets[name]
