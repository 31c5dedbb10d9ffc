"""What a sweep explores: the grid, the objective, and one trial's configuration.

A trial is one point of the grid (method x schedule x sparsity x bits x seed). Its
identifier is derived from its configuration alone, so a resumed sweep recognizes the
trials it has finished, whatever order they ran in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from itertools import product
from typing import Optional

from hwprune.errors import OptionError
from hwprune.prune.schedules import nm_pattern

SCHEDULES = ("oneshot", "gradual", "iterative")
METHODS = ("magnitude", "random", "neurons", "filters", "nm")


@dataclass(frozen=True)
class Objective:
    """A cost to minimize: where it is read in an export's report and on which targets.

    ``keys`` are tried in order: the first one the report holds is the figure, so an MCU
    export is judged by its emulated energy while another one falls back to the
    operation-and-memory proxy. A key ``a.b`` reads field ``b`` of the object at ``a``
    (``energy_proxy_pj`` is an object of parts; its ``total`` is the figure).
    """

    name: str
    keys: tuple[str, ...]
    unit: str
    kinds: tuple[str, ...]  # target kinds that can measure it
    scale: tuple[float, ...] = ()  # per key: multiply to get ``unit``

    def value(self, report: dict) -> Optional[float]:
        for index, key in enumerate(self.keys):
            value = report
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                factor = self.scale[index] if self.scale else 1.0
                return float(value) * factor
        return None


OBJECTIVES = {
    "flash": Objective("flash", ("flash_bytes",), "B", ("host", "mcu")),
    "cycles": Objective("cycles", ("cycles",), "cycles", ("mcu",)),
    "energy": Objective("energy", ("energy_uj", "energy_proxy_pj.total"), "uJ", ("host", "mcu", "fpga"), (1.0, 1e-6)),
    "lut": Objective("lut", ("lut",), "LUT", ("fpga",)),
}


@dataclass(frozen=True)
class Trial:
    method: str
    schedule: str
    sparsity: float
    bits: int
    seed: int

    @property
    def config(self) -> str:
        """The trial without its seed: the point that seeds are averaged over."""
        return f"{self.method}-{self.schedule}-s{self.sparsity:g}-w{self.bits}"

    @property
    def id(self) -> str:
        return f"{self.config}-seed{self.seed}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SweepSpec:
    """Everything that decides a sweep's results (so a resume can check it is the same sweep)."""

    model_sha256: str
    data_sha256: str
    test_sha256: Optional[str]
    target: str
    sparsities: tuple[float, ...]
    methods: tuple[str, ...]
    schedules: tuple[str, ...]
    bits: tuple[int, ...]
    seeds: int
    objective: str
    min_accuracy: float
    activation_bits: int = 8
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    name: str = "model"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        grids = {"--sparsity": self.sparsities, "--method": self.methods, "--schedule": self.schedules,
                 "--bits": self.bits}
        for option, values in grids.items():
            if not values:
                raise OptionError(f"{option} is empty: the grid has no trials")
            if len(set(values)) != len(values):
                raise OptionError(f"{option} lists a value twice: {list(values)}")
        for s in self.sparsities:
            if not 0.0 <= s < 1.0:
                raise OptionError(f"--sparsity values must be in [0, 1), got {s}")
        for m in self.methods:
            if m not in METHODS:
                raise OptionError(f"--method {m!r} is not one of {', '.join(METHODS)}")
        if "nm" in self.methods:
            for s in self.sparsities:  # N:M keeps N of every M weights: each sparsity must be one
                nm_pattern(s, None)
        for s in self.schedules:
            if s not in SCHEDULES:
                raise OptionError(f"--schedule {s!r} is not one of {', '.join(SCHEDULES)}")
        for b in self.bits:
            if not 2 <= b <= 16:
                raise OptionError(f"--bits values must be from 2 to 16, got {b}")
        if not 2 <= self.activation_bits <= 16:
            raise OptionError(f"--activation-bits must be from 2 to 16, got {self.activation_bits}")
        if self.seeds < 1:
            raise OptionError(f"--seeds must be at least 1, got {self.seeds}")
        if self.objective not in OBJECTIVES:
            raise OptionError(f"--objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        if not 0.0 <= self.min_accuracy <= 1.0:
            raise OptionError(f"--min-accuracy is a fraction in [0, 1], got {self.min_accuracy}")
        if self.epochs < 1:
            raise OptionError(f"--epochs must be at least 1, got {self.epochs}")

    def trials(self) -> list[Trial]:
        return [Trial(m, sc, s, b, seed)
                for m, sc, s, b, seed in product(self.methods, self.schedules, self.sparsities, self.bits,
                                                  range(self.seeds))]

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("sparsities", "methods", "schedules", "bits"):
            d[key] = list(d[key])
        return d

    #: Options that judge the trials without changing them: a finished sweep can be
    #: resumed with another bar and is only judged again.
    JUDGING = ("min_accuracy",)

    @property
    def fingerprint(self) -> str:
        decisive = {k: v for k, v in self.to_dict().items() if k not in self.JUDGING}
        return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:16]


def parse_list(text: str, convert, option: str) -> tuple:
    """``"0.5,0.7"`` -> ``(0.5, 0.7)``; an empty list or a bad item is an OptionError."""
    items = [item.strip() for item in str(text).split(",")]
    if not any(items):
        raise OptionError(f"{option} is empty: give a comma-separated list")
    if not all(items):  # "0.5,,0.9": a value left out, not a list of two
        raise OptionError(f"{option} {text!r} has an empty item; give a comma-separated list such as 0.5,0.7,0.9")
    try:
        return tuple(convert(item) for item in items)
    except ValueError:
        raise OptionError(f"{option} must be a comma-separated list of {convert.__name__}s, got {text!r}") from None


def check_objective(objective: str, target_kind: str, target_name: str) -> Objective:
    if objective not in OBJECTIVES:
        raise OptionError(f"--objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    spec = OBJECTIVES[objective]
    if target_kind not in spec.kinds:
        can = [name for name, o in OBJECTIVES.items() if target_kind in o.kinds]
        raise OptionError(f"--objective {objective} cannot be measured on {target_name} (a {target_kind} target); "
                          f"it offers {', '.join(can)}")
    return spec
