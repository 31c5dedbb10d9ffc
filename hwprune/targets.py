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
    "fpga": {"clock_mhz", "lut", "ff", "dsp", "bram_36k", "resource_source"},
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
        key = sorted(unknown)[0]
        stem = key.split("_")[0]
        with_unit = [k for k in sorted(known) if k.startswith(f"{stem}_")]
        hint = (f"; units are part of the key names: did you mean {with_unit[0]!r}?" if with_unit
                else f"; known keys are {sorted(known)}")
        raise TargetError(f"{path}: unknown key {key!r}{hint}")
    for f in fields(Target):
        value = data.get(f.name)
        numeric = f.type in ("Optional[int]", "Optional[float]")
        if value is not None and numeric and (isinstance(value, bool) or not isinstance(value, (int, float))):
            unit = f.name.rsplit("_", 1)[-1] if "_" in f.name else ""
            raise TargetError(f"{path}: {f.name} must be a plain number"
                              + (f" (the unit, {unit}, is in the key name)" if unit else "") + f", got {value!r}")
    for key in ("name", "kind", "description"):
        if key not in data:
            raise TargetError(f"{path}: missing key {key!r}")
    kind = data["kind"]
    if kind not in KINDS:
        raise TargetError(f"{path}: kind {kind!r} is not one of {list(KINDS)}")
    misplaced = set(data) - {"name", "kind", "description"} - _KEYS_BY_KIND[kind]
    if misplaced:
        raise TargetError(f"{path}: keys {sorted(misplaced)} do not apply to a target of kind {kind!r}")
    missing = {k for k in _KEYS_BY_KIND[kind] if not k.endswith("_source")} - set(data)
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
    """A shipped target by name, or a target file (a path ending in ``.toml``)."""
    if str(name).endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise TargetError(f"{path}: no such target file")
        return parse_target(path)
    targets = available_targets()
    if name not in targets:
        raise TargetError(f"unknown target {name!r}; available targets: {', '.join(sorted(targets))}")
    return targets[name]
