"""An energy proxy per inference: operations and memory accesses priced in 45 nm.

A proxy for comparing models (dense against pruned, 8 bits against 4), independent of
any chip: it is not a measurement, and a real microcontroller or FPGA spends much more
on instruction fetch, control and leakage. The figures and their sources are in
``costs/energy_45nm.toml`` (Horowitz, ISSCC 2014), which also says how they are scaled
between bit widths. Per layer, for one inference:

- compute: every multiplication the kernel executes (weight width x input width) and
  every addition into the accumulator (accumulator width); a dense-format layer
  multiplies its zeros too, a csr layer only its nonzeros. A ReLU or a max-pool is one
  comparison (an add) per element read. Casts, loops and addresses are not counted.
- weight reads: every byte the chosen storage format keeps (values, indices, row
  pointers, bias), once per use (a Dense layer once, a convolution once per output
  position), from the memory level the model's stored weights fit in;
- activation traffic: one input read per multiplication (the kernels load ``x[i]``
  for every product; a pool reads its window) and one write per output, at the C
  element size, from the level the largest layer's input and output fit in.

The counting is ``energy_rules``' (a rule per layer kind); this module prices the counts.

A float model is priced as float32: 32-bit float multiplies and adds, 4-byte weights
and activations, stored dense, or as csr (float values, the same indices) when pruned.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from hwprune.backends.c.formats import FORMATS, encode
from hwprune.energy_rules import Context, LayerWork, _works
from hwprune.errors import HwpruneError
from hwprune.ir.graph import Graph
from hwprune.paths import costs_dir

TABLE_FILE = "energy_45nm.toml"
NOTE = ("a 45 nm proxy for comparing models (Horowitz, ISSCC 2014: operations at their bit widths, "
        "memory reads by level), not a measurement of a chip")


@dataclass(frozen=True)
class MemoryLevel:
    name: str
    capacity_bytes: Optional[int]  # None: unbounded (DRAM)
    pj_per_64_bits: float

    def pj(self, nbytes: float) -> float:
        return nbytes * 8 / 64 * self.pj_per_64_bits


@dataclass(frozen=True)
class EnergyTable:
    operations: dict  # name -> ((bits, pJ), ...) ascending
    memory: tuple[MemoryLevel, ...]  # ascending capacity, DRAM last

    def int_add(self, bits: int) -> float:
        """Linear in the width between the table's points, proportional outside them."""
        return _interpolate(self.operations["int_add"], bits)

    def int_mult(self, a_bits: int, b_bits: int) -> float:
        """Linear in the product of the operand widths (an array multiplier's cells)."""
        points = tuple((bits * bits, pj) for bits, pj in self.operations["int_mult"])
        return _interpolate(points, a_bits * b_bits)

    def float_add(self) -> float:
        return dict(self.operations["float_add"])[32]

    def float_mult(self) -> float:
        return dict(self.operations["float_mult"])[32]

    def level(self, nbytes: int) -> MemoryLevel:
        """The smallest memory whose capacity covers ``nbytes``."""
        for level in self.memory:
            if level.capacity_bytes is None or nbytes <= level.capacity_bytes:
                return level
        return self.memory[-1]


def _interpolate(points, x: float) -> float:
    (x0, y0), (x1, y1) = points[0], points[-1]
    if x <= x0:
        return y0 * x / x0
    if x >= x1:
        return y1 * x / x1
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        if xa <= x <= xb:
            return ya + (yb - ya) * (x - xa) / (xb - xa)
    raise AssertionError("unreachable")


@lru_cache(maxsize=4)
def load_table(path: Optional[str] = None) -> EnergyTable:
    path = Path(path) if path else costs_dir() / TABLE_FILE
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise HwpruneError(f"{path}: cannot read the energy table ({exc})") from None
    operations: dict[str, list] = {}
    for entry in data.get("operation", []):
        if not entry.get("source"):
            raise HwpruneError(f"{path}: operation {entry.get('name')} {entry.get('bits')}-bit has no source")
        operations.setdefault(entry["name"], []).append((int(entry["bits"]), float(entry["pj"])))
    for name in ("int_add", "int_mult", "float_add", "float_mult"):
        if name not in operations:
            raise HwpruneError(f"{path}: no figure for {name}")
    memory = []
    for entry in data.get("memory", []):
        if not entry.get("source"):
            raise HwpruneError(f"{path}: memory {entry.get('name')!r} has no source")
        memory.append(MemoryLevel(entry["name"], entry.get("capacity_bytes"), float(entry["pj_per_64_bits"])))
    memory.sort(key=lambda m: (m.capacity_bytes is None, m.capacity_bytes or 0))
    return EnergyTable({k: tuple(sorted(v)) for k, v in operations.items()}, tuple(memory))


# -- what one layer does ------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerEnergy:
    work: LayerWork
    mult_pj: float
    add_pj: float
    weight_read_pj: float
    activation_pj: float

    @property
    def compute_pj(self) -> float:
        return self.mult_pj + self.add_pj

    @property
    def total_pj(self) -> float:
        return self.compute_pj + self.weight_read_pj + self.activation_pj


@dataclass(frozen=True)
class EnergyProxy:
    layers: tuple[LayerEnergy, ...]
    weight_memory: MemoryLevel
    activation_memory: MemoryLevel
    description: str

    def total(self, part: str = "total_pj") -> float:
        return sum(getattr(layer, part) for layer in self.layers)

    def to_json(self) -> dict:
        return {
            "total": self.total(), "compute": self.total("compute_pj"),
            "weight_reads": self.total("weight_read_pj"), "activation_traffic": self.total("activation_pj"),
            "model": self.description,
            "weight_memory": self.weight_memory.name, "activation_memory": self.activation_memory.name,
            "weight_bytes": sum(l.work.stored_bytes for l in self.layers),
            "layers": [
                {"name": l.work.name, "kind": l.work.kind, "total": l.total_pj, "compute": l.compute_pj,
                 "weight_reads": l.weight_read_pj, "activation_traffic": l.activation_pj,
                 "mults": l.work.mults, "mult_bits": list(l.work.mult_bits), "adds": l.work.adds,
                 "add_bits": l.work.add_bits, "weight_bytes": l.work.weight_bytes,
                 "activation_bytes": l.work.activation_bytes_read + l.work.activation_bytes_written}
                for l in self.layers
            ],
        }


def price(works: list[LayerWork], floating: bool, description: str, table: Optional[EnergyTable] = None) -> EnergyProxy:
    table = table or load_table()
    weight_memory = table.level(sum(w.stored_bytes for w in works))
    activation_memory = table.level(max((w.live_activation_bytes for w in works), default=0))
    layers = []
    for w in works:
        if floating:
            mult, add = table.float_mult(), table.float_add()
        else:
            mult = table.int_mult(*w.mult_bits) if w.mults else 0.0
            add = table.int_add(w.add_bits) if w.adds else 0.0
        layers.append(LayerEnergy(
            w, w.mults * mult, w.adds * add, weight_memory.pj(w.weight_bytes),
            activation_memory.pj(w.activation_bytes_read + w.activation_bytes_written),
        ))
    return EnergyProxy(tuple(layers), weight_memory, activation_memory, description)


def _is_weighted(layer) -> bool:
    return getattr(layer, "weight", None) is not None


def export_proxy(graph: Graph, formats: dict, table: Optional[EnergyTable] = None) -> EnergyProxy:
    """The proxy of a quantized graph as exported: ``formats`` maps a weighted layer to its format."""
    if not graph.is_quantized:
        raise HwpruneError(f"model {graph.name!r} is not quantized; use float_proxy for a float model")
    def context_of(index, layer) -> Context:
        in_t, out_t = graph.input_types(layer)[0], graph.type_of(layer.name)
        operands = tuple((int(np.prod(shape)), t.storage_bits // 8, t.width)
                         for shape, t in zip(graph.input_shapes(layer), graph.input_types(layer)))
        common = dict(shape_in=graph.input_shapes(layer)[0], shape_out=graph.shape_of(layer.name),
                      in_bytes=in_t.storage_bits // 8, out_bytes=out_t.storage_bits // 8, in_bits=in_t.width,
                      operands=operands)
        accum_t = getattr(layer, "accum_t", None)
        if not _is_weighted(layer):
            return Context(**common, accum_bits=accum_t.width if accum_t is not None else 0)
        s = encode(layer, formats.get(layer.name, "dense"), graph.input_shapes(layer)[0])
        return Context(**common, stored_bytes=s.weight_bytes + s.bias_bytes, format=s.format,
                       weight_bits=layer.weight_t.width, accum_bits=accum_t.width)

    weighted = [l for l in graph.layers if _is_weighted(l)]
    formats_used = sorted({formats.get(l.name, "dense") for l in weighted})
    widths = sorted({l.weight_t.width for l in weighted})
    description = (f"exported: {'/'.join(map(str, widths))}-bit weights, {graph.input_t.width}-bit input, "
                   f"{'/'.join(formats_used)}")
    return price(_works(graph, context_of), False, description, table)


def float_proxy(graph: Graph, sparse: bool = False, table: Optional[EnergyTable] = None) -> EnergyProxy:
    """The proxy of ``graph``'s layers in float32: dense storage and every product, or with
    ``sparse`` csr storage (float32 values) and products on the nonzero weights only."""
    fmt = "csr" if sparse else "dense"

    def context_of(index, layer) -> Context:
        common = dict(shape_in=graph.input_shapes(layer)[0], shape_out=graph.shape_of(layer.name), in_bytes=4, out_bytes=4,
                      in_bits=32, accum_bits=32, operands=tuple((int(np.prod(s)), 4, 32) for s in graph.input_shapes(layer)))
        if not _is_weighted(layer):
            return Context(**common)
        mask = (np.asarray(layer.weight) != 0).astype(np.int64).reshape(layer.weight.shape[0], -1)
        stored = sum(a.nbytes for a in FORMATS[fmt].encode(mask, "int32_t"))  # int32_t: 4 bytes, as float32
        return Context(**common, stored_bytes=stored + 4 * layer.weight.shape[0], format=fmt, weight_bits=32)

    total = sum(l.weight.size for l in graph.layers if _is_weighted(l))
    nonzero = sum(int(np.count_nonzero(l.weight)) for l in graph.layers if _is_weighted(l))
    description = f"float32, {fmt}" + (f" ({(1 - nonzero / max(total, 1)) * 100:.0f} % sparse)" if sparse else "")
    return price(_works(graph, context_of), True, description, table)


def dense_float_graph(graph: Graph) -> Graph:
    """``graph`` with every weight nonzero: the float32 dense model of the same shapes (a
    pruned weight stands for the trained value it had; only its being nonzero matters here)."""
    layers = [l.with_(weight=np.where(l.weight == 0, 1.0, l.weight)) if _is_weighted(l) else l
              for l in graph.layers]
    return graph.with_layers(layers)


def report_section(graph: Graph, formats: dict) -> dict:
    """``energy_proxy_pj`` of a report: the export's parts per layer, and the float32 dense
    model of the same layer shapes beside it."""
    exported = export_proxy(graph, formats)
    baseline = float_proxy(dense_float_graph(graph))
    out = exported.to_json()
    out["float32_dense"] = baseline.to_json()
    out["saving_vs_float32_dense"] = baseline.total() / max(exported.total(), 1e-30)
    out["note"] = NOTE
    return out
