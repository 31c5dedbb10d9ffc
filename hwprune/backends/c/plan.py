"""What the generated C computes for each layer, decided before any text is written.

Every choice mirrors ``hwprune.reference`` so that the C equals it bit for bit:

- Dense, fast path (the reference's own condition): when the accumulator keeps every
  product exactly (``accum frac >= product frac``) and either can never overflow or
  wraps (modular addition commutes with one final wrap), the kernel sums the raw
  products, scales the sum by ``2^shift`` once, adds the bias, wraps once if needed.
- Dense, general path: every product is cast to the accumulator type (rounding or
  shifting left, with its overflow) and added in input order, the accumulator's
  overflow applied after every addition, as hls4ml does.
- The C accumulator is ``int32_t`` when every value it can hold fits (factors, products,
  partial sums, and the accumulator type itself), else ``int64_t``.
- A ReLU right after a Dense layer is fused into the Dense kernel's final cast:
  ``relu_cast(max(result_cast(acc), 0))`` is what the two layers compute one after the
  other, so it is bit-identical by construction; the ReLU's cast is left out when it is
  the identity on the values it receives (same fraction bits, range wide enough). The
  Dense layer's own output is then never stored, except in traced builds.
- Activations live in one static arena planned by tensor liveness (see ``arena``), sized
  at generation time; layers read the graph input as ``input``, and the layer that
  produces the graph output writes ``output``. Pass-through layers (Flatten, Reshape,
  Softmax's marker) move no data: their output is their input's buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from hwprune.backends.c import arena
from hwprune.backends.c.cast import Cast
from hwprune.backends.c.formats import C_BYTES, LayerStorage
from hwprune.errors import ModelError
from hwprune.ir.graph import Graph
from hwprune.backends.c.plan_activations import ACTIVATION_KINDS, ActivationArithmetic, activation_arithmetic
from hwprune.backends.c.plan_merge import MERGE_KINDS, MergeArithmetic, merge_arithmetic
from hwprune.backends.c.plan_spatial import PoolArithmetic, Window, padded_copy_bytes, pool_arithmetic, window
from hwprune.ir.layers import Layer, WeightedLayer
from hwprune.ir.fixed import Fixed
from hwprune.reference import dense_integers, dense_sum

INT32_MAX = (1 << 31) - 1
INT64_MAX = (1 << 63) - 1
BUFFER_MEMBERS = {"int8_t": "i8", "uint8_t": "u8", "int16_t": "i16", "uint16_t": "u16",
                  "int32_t": "i32", "uint32_t": "u32", "int64_t": "i64", "uint64_t": "u64"}


def _magnitude(t: Fixed) -> int:
    return max(-t.min_int, t.max_int)


def _fits(bits: int, *bounds: int) -> bool:
    """Whether magnitudes up to each bound fit a signed ``bits``-bit integer."""
    limit = INT32_MAX if bits == 32 else INT64_MAX
    return all(b <= limit for b in bounds)


def _range_fits(t: Fixed, bits: int) -> bool:
    """Whether the hwprune_fixed.h ``_i<bits>`` functions accept ``t`` (its range fits)."""
    return t.max_int <= (INT32_MAX if bits == 32 else INT64_MAX)


@dataclass(frozen=True)
class DenseArithmetic:
    fast: bool
    acc_bits: int  # 32 or 64: the C accumulator
    accum_t: Fixed
    scale_shift: int  # fast path: the raw sum times 2^scale_shift lands on accum's grid
    wrap_accumulator: bool  # fast path: the sum may leave accum's range; wrap it once
    product: Optional[Cast]  # general path: each product to the accumulator type
    result: Cast  # the accumulator to the layer's result type

    @property
    def acc_c(self) -> str:
        return f"int{self.acc_bits}_t"


def dense_arithmetic(layer: WeightedLayer, in_t: Fixed) -> DenseArithmetic:
    w, acc0 = dense_integers(layer)
    acc_t = layer.accum_t
    x_abs = _magnitude(in_t)
    w_abs = int(np.abs(w).max(initial=0))
    factors = (x_abs, _magnitude(layer.weight_t))
    result_shift = acc_t.frac_bits - layer.result_t.frac_bits

    summing = dense_sum(layer, in_t, w, acc0)  # the reference's own rule
    shift = summing.shift
    if summing.fast:
        # Every value the kernel forms (partial sums, scaled sum plus bias) is within bound.
        acc_bits = 32 if _fits(32, summing.bound, *factors) else 64
        return DenseArithmetic(
            fast=True, acc_bits=acc_bits, accum_t=acc_t, scale_shift=shift,
            wrap_accumulator=not summing.never_overflows, product=None,
            result=Cast(result_shift, layer.result_t, _cast_bits(acc_bits, layer.result_t)),
        )

    # acc + product: both within accum's range, so twice its magnitude bounds the sum.
    bounds = (x_abs * w_abs, 2 * _magnitude(acc_t), *factors)
    if _fits(32, *bounds):
        acc_bits = 32
    elif _fits(64, *bounds):
        acc_bits = 64
    else:
        raise ModelError(
            f"layer {layer.name!r}: a product of input {in_t} and weight {layer.weight_t} or a sum in {acc_t} "
            "needs more than 64 bits in C; use narrower types"
        )
    return DenseArithmetic(
        fast=False, acc_bits=acc_bits, accum_t=acc_t, scale_shift=0, wrap_accumulator=False,
        product=Cast(-shift, acc_t, acc_bits),
        result=Cast(result_shift, layer.result_t, _cast_bits(acc_bits, layer.result_t)),
    )


def _cast_bits(acc_bits: int, to: Fixed) -> int:
    return 32 if acc_bits == 32 and _range_fits(to, 32) else 64


def relu_cast(in_t: Fixed, out_t: Fixed) -> Cast:
    bits = 32 if _range_fits(in_t, 32) and _range_fits(out_t, 32) else 64
    return Cast(in_t.frac_bits - out_t.frac_bits, out_t, bits)


# -- the chain of steps ----------------------------------------------------------------------


@dataclass(frozen=True)
class Tensor:
    """A C array holding one layer's values: ``expr`` names it in ``<name>_predict``."""

    expr: str
    c_type: str
    size: int
    t: Fixed


@dataclass(frozen=True, eq=False)
class Step:
    index: int
    layer: Layer
    sources: tuple[Tensor, ...]  # what the kernel reads, in the layer's operand order
    dest: Tensor
    function: Optional[str]  # None: a pass-through layer, no code
    storage: Optional[LayerStorage] = None
    arithmetic: Optional[DenseArithmetic] = None
    relu: Optional[Cast] = None  # a ReLU layer's cast, or the cast of a ReLU fused into this Dense
    out: Optional[Tensor] = None  # a Dense with a fused ReLU writes the ReLU's output here
    out_layer: Optional[str] = None  # ... and that ReLU's name
    relu_is_identity: bool = False  # the fused ReLU needs no cast of its own
    window: Optional[Window] = None  # conv and pooling geometry (plan_spatial)
    pool: Optional[PoolArithmetic] = None
    merge: Optional[MergeArithmetic] = None  # Add, Multiply, Concatenate, Clip (plan_merge)
    activation: Optional[ActivationArithmetic] = None  # LeakyReLU, HardSigmoid, Sigmoid, Tanh (plan_activations)

    @property
    def source(self) -> Tensor:
        """The first (for most layers the only) input."""
        return self.sources[0]

    @property
    def fused(self) -> bool:
        return self.out is not None

    @property
    def written(self) -> Tensor:
        """Where the kernel writes: the fused ReLU's output, else this layer's."""
        return self.out if self.out is not None else self.dest


@dataclass(frozen=True)
class ModelPlan:
    graph: Graph
    steps: tuple[Step, ...]
    input: Tensor
    output: Tensor
    arena_bytes: int
    arena_members: tuple[str, ...]  # C types the arena holds
    arena_live_bound: int = 0  # the most activation bytes live at one step (no arena is smaller)
    arena_io_bound: int = 0  # the most bytes one layer reads and writes in the arena
    arena_never_reuse: int = 0  # every stored tensor in bytes of its own

    @property
    def max_size(self) -> int:
        return max([self.input.size, *(s.dest.size for s in self.steps)])

    @property
    def trace_c_types(self) -> tuple[str, ...]:
        return tuple(sorted({s.dest.c_type for s in self.steps if not s.fused}))

    @property
    def has_fused(self) -> bool:
        return any(s.fused for s in self.steps)

    @property
    def padded_bytes(self) -> int:
        """Static zero-bordered input copies of padded conv layers (``plan_spatial.padded_copy_bytes``),
        outside the arena."""
        return sum(padded_copy_bytes(s) for s in self.steps)


def _has_kernel(layer: Layer) -> bool:
    return (layer.weighted or layer.spatial or layer.passthrough or layer.kind == "relu" or layer.kind in MERGE_KINDS
            or layer.kind in ACTIVATION_KINDS)


def _fused_relus(graph: Graph, fuse_relu: bool) -> dict[str, str]:
    """Dense layer -> the ReLU fused into it: the ReLU is the Dense's only reader, and the
    Dense's own output is no model output."""
    fused = {}
    for layer in graph.layers:
        readers = graph.consumers(layer.name)
        if (fuse_relu and layer.kind == "dense" and len(readers) == 1 and readers[0].kind == "relu"
                and layer.name not in graph.outputs):
            fused[layer.name] = readers[0].name
    return fused


def plan_model(graph: Graph, storages: list[LayerStorage], fuse_relu: bool = True) -> ModelPlan:
    if not graph.is_quantized:
        raise ModelError(f"model {graph.name!r} is not quantized; the C backend needs a fixed-point graph "
                         "(run quant.calibrate first)")
    for layer in graph.layers:
        if not _has_kernel(layer):
            raise ModelError(f"layer {layer.name!r}: the C backend has no kernel for {layer.kind!r} layers")
    by_name = {s.name: s for s in storages}
    size = lambda name: int(np.prod(graph.shape_of(name)))  # noqa: E731
    fused = _fused_relus(graph, fuse_relu)
    fused_into = {relu: dense for dense, relu in fused.items()}
    # The buffer that holds each tensor: a pass-through layer's is its input's; a fused ReLU's
    # is written by its Dense; the graph input is `input`.
    holder: dict[str, str] = {graph.input.name: graph.input.name}
    writer: dict[str, Layer] = {}  # buffer -> the layer whose kernel writes it
    for layer in graph.layers:
        if layer.passthrough:
            holder[layer.name] = holder[layer.inputs[0]]
        elif layer.name in fused_into:
            holder[layer.name] = layer.name
        elif layer.name in fused:
            holder[layer.name] = fused[layer.name]
            writer[fused[layer.name]] = layer
        else:
            holder[layer.name] = layer.name
            writer[layer.name] = layer
    out_buffer = holder[graph.output]
    position = {layer.name: i for i, layer in enumerate(graph.layers)}
    last_read = {b: position[w.name] for b, w in writer.items()}
    for layer in graph.layers:
        for source in layer.inputs:
            b = holder[source]
            if b in last_read:
                last_read[b] = max(last_read[b], position[layer.name])
    stored = [b for b in writer if b != out_buffer]
    nbytes = {b: size(b) * C_BYTES[graph.type_of(b).c_type] for b in writer}
    placed = arena.plan([arena.Buffer(b, nbytes[b], position[writer[b].name], last_read[b]) for b in stored])
    io_bound = max((sum(nbytes[b] for b in {holder[s] for s in layer.inputs} | {holder[layer.name]} if b in stored)
                    for layer in graph.layers), default=0)

    def tensor(buffer: str) -> Tensor:
        t = graph.type_of(buffer)
        if buffer == graph.input.name:
            return Tensor("input", t.c_type, size(buffer), t)
        if buffer == out_buffer:
            return Tensor("output", t.c_type, size(buffer), t)
        member, elem = BUFFER_MEMBERS[t.c_type], C_BYTES[t.c_type]
        offset = placed.offsets[buffer] // elem
        expr = f"hwprune_arena.{member}" if offset == 0 else f"(hwprune_arena.{member} + {offset})"
        return Tensor(expr, t.c_type, size(buffer), t)

    steps = []
    for index, layer in enumerate(graph.layers):
        sources = tuple(tensor(holder[s]) for s in layer.inputs)
        written = tensor(holder[layer.name])
        if writer.get(holder[layer.name]) is not layer:  # pass-through, or a ReLU fused into its Dense
            steps.append(Step(index, layer, sources, written, None))
            continue
        function = f"hwprune_{graph.name}_{index}_{layer.name}"
        geometry = None
        if layer.spatial:
            geometry = window(layer, graph.input_shape_of_layer(layer), graph.shape_of(layer.name))
        source = sources[0]
        if layer.weighted:
            if layer.name not in by_name:
                raise ModelError(f"layer {layer.name!r}: no storage was chosen for it")
            extra = {}
            dest = written
            if layer.name in fused:
                out_t = graph.type_of(layer.name)
                relu = relu_cast(out_t, written.t)
                identity = relu.shift == 0 and written.t.max_int >= out_t.max_int
                dest = Tensor("hwprune_trace_fused", out_t.c_type, size(layer.name), out_t)
                extra = dict(relu=relu, out=written, out_layer=fused[layer.name], relu_is_identity=identity)
            step = Step(index, layer, sources, dest, function, storage=by_name[layer.name],
                        arithmetic=dense_arithmetic(layer, source.t), window=geometry, **extra)
        elif layer.spatial:
            step = Step(index, layer, sources, written, function, window=geometry,
                        pool=pool_arithmetic(layer, source.t, geometry))
        elif layer.kind in MERGE_KINDS:
            step = Step(index, layer, sources, written, function,
                        merge=merge_arithmetic(layer, graph.input_shapes(layer), graph.input_types(layer),
                                               graph.shape_of(layer.name)))
        elif layer.kind in ACTIVATION_KINDS:
            step = Step(index, layer, sources, written, function, activation=activation_arithmetic(layer, source.t))
        else:
            step = Step(index, layer, sources, written, function, relu=relu_cast(source.t, written.t))
        steps.append(step)
    members = tuple(sorted({graph.type_of(b).c_type for b in stored}))
    return ModelPlan(graph, tuple(steps), tensor(graph.input.name), tensor(out_buffer), placed.nbytes, members,
                     placed.live_bound, io_bound, placed.never_reuse)


def buffer_length(nbytes: int, c_type: str) -> int:
    """Elements of ``c_type`` that cover ``nbytes`` (a union member's length)."""
    return max(1, -(-nbytes // C_BYTES[c_type]))
