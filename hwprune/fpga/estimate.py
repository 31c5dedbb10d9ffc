"""FPGA resources of a quantized graph before synthesis: DSP, LUT, FF, BRAM, latency, II.

Rules per layer kind live in ``RULES`` (``@rule("dense")``); a new layer kind (Conv1D,
Conv2D, pooling: ``fpga.spatial``; Add, Multiply, Concatenate, Clip: ``fpga.merge``) adds one.
A rule gets its input's shape and type; a layer that reads several tensors gets tuples of
their shapes and types, in operand order. On a graph with branches the latency is the
longest path from the input to an output, the branches running side by side. Every figure comes from the nonzero constant multiplications,
their bit widths, the accumulator widths, the strategy and the reuse factor. The rules,
their sources and which constants are calibrated guesses: ``docs/fpga_resources.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np

from hwprune.errors import OptionError, UnsupportedLayerError
from hwprune.fpga.constants import csd_digits, dsp_tiles, significant_bits
from hwprune.fpga.da import dense_da_estimate
from hwprune.fpga.resources import LayerResources, dense_integers
from hwprune.hls4ml_options import STRATEGIES as HLS_STRATEGIES, check_strategy
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Layer
from hwprune.ir.fixed import Fixed
from hwprune.reference.activations import batchnorm_grid

STRATEGIES = tuple(HLS_STRATEGIES)
FAMILIES = {
    # family: (DSP A-port bits, B-port bits, yosys synth_xilinx -family)
    "7series": (25, 18, "xc7"),  # DSP48E1, UG479
    "ultrascale+": (27, 18, "xcup"),  # DSP48E2, UG579
    # Lattice and Gowin (place-and-route with nextpnr, hwprune.fpga.pnr): their multipliers
    "ecp5": (18, 18, "xc7"),  # MULT18X18D, ECP5 family datasheet FPGA-DS-02012
    "ice40": (16, 16, "xc7"),  # SB_MAC16, iCE40 UltraPlus datasheet FPGA-DS-02008
    "gowin": (18, 18, "xc7"),  # MULT18X18, Gowin GW1NR datasheet DS117
}

# Calibrated guesses (docs/fpga_resources.md says which figure each was fitted to).
CSD_DIGITS_IN_LUTS = 3  # a constant product with at most this many CSD digits stays in LUTs
NARROW_PRODUCT_BITS = 10  # a product at most this wide stays in LUTs whatever the constant
ADDER_LEVEL_NS = 1.6  # one carry-chain adder level plus routing
LUT_MULTIPLIER_FACTOR = 0.6  # LUTs per partial-product bit of a generic multiplier in fabric
LUTRAM_MAX_BITS = 1024  # a weight partition smaller than this is LUT ROM, not BRAM


@dataclass(frozen=True)
class Options:
    strategy: str = "latency"
    reuse_factor: int = 1
    family: str = "ultrascale+"
    clock_mhz: float = 200.0
    #: per-layer (name, strategy, reuse factor) from a configuration file; None: the model's
    layers: tuple = ()

    def __post_init__(self) -> None:
        check_strategy(self.strategy, self.reuse_factor)
        if self.family not in FAMILIES:
            raise OptionError(f"unknown FPGA family {self.family!r}; known: {', '.join(FAMILIES)}")
        if not self.clock_mhz > 0:
            raise OptionError(f"clock must be positive, got {self.clock_mhz} MHz")

    def for_layer(self, name: str) -> "Options":
        for n, strategy, reuse in self.layers:
            if n == name:
                return replace(self, strategy=strategy or self.strategy, reuse_factor=reuse or self.reuse_factor,
                               layers=())
        return self

    @property
    def dsp_shape(self) -> tuple[int, int]:
        return FAMILIES[self.family][:2]

    @property
    def adder_levels_per_cycle(self) -> int:
        return max(1, int(1000.0 / self.clock_mhz / ADDER_LEVEL_NS))


@dataclass(frozen=True)
class Estimate:
    model: str
    options: Options
    layers: tuple[LayerResources, ...]
    #: the longest path's latency on a graph with branches (None: the layers in a row)
    critical_path_cycles: Optional[int] = None

    def _sum(self, key: str) -> int:
        return int(sum(getattr(l, key) for l in self.layers))

    @property
    def dsp(self) -> int:
        return self._sum("dsp")

    @property
    def lut(self) -> int:
        return self._sum("lut")

    @property
    def ff(self) -> int:
        return self._sum("ff")

    @property
    def bram_18k(self) -> int:
        return self._sum("bram_18k")

    @property
    def bram_36k(self) -> int:
        return math.ceil(self.bram_18k / 2)

    @property
    def latency_cycles(self) -> int:
        if self.critical_path_cycles is not None:
            return self.critical_path_cycles
        return self._sum("latency_cycles")

    @property
    def ii(self) -> int:
        """Layers run as a dataflow pipeline: the slowest layer sets the interval."""
        return max((l.ii for l in self.layers), default=1)

    def to_dict(self) -> dict:
        return {"model": self.model, "strategy": self.options.strategy, "reuse_factor": self.options.reuse_factor,
                "family": self.options.family, "clock_mhz": self.options.clock_mhz,
                "dsp": self.dsp, "lut": self.lut, "ff": self.ff, "bram_18k": self.bram_18k,
                "bram_36k": self.bram_36k, "bram": self.bram_36k, "latency_cycles": self.latency_cycles,
                "latency_ns": self.latency_cycles * 1000.0 / self.options.clock_mhz, "ii": self.ii,
                "layers": [l.to_dict() for l in self.layers]}


Rule = Callable[[Layer, tuple, Fixed, Options], LayerResources]
RULES: dict[str, Rule] = {}


def rule(kind: str):
    def register(fn: Rule) -> Rule:
        RULES[kind] = fn
        return fn

    return register


def estimate(graph: Graph, options: Options = Options()) -> Estimate:
    if not graph.is_quantized:
        raise OptionError(f"model {graph.name!r} is not quantized; FPGA resources need its fixed-point types")
    rows = []
    for layer in graph.layers:
        fn = RULES.get(layer.kind)
        if fn is None:
            raise UnsupportedLayerError(f"layer {layer.name!r}: no FPGA resource rule for layer kind {layer.kind!r}; "
                                        f"known kinds are {sorted(RULES)}")
        shapes, types = graph.input_shapes(layer), graph.input_types(layer)
        if len(layer.inputs) == 1:
            shapes, types = shapes[0], types[0]
        rows.append(fn(layer, shapes, types, options.for_layer(layer.name)))
    return Estimate(graph.name, options, tuple(rows), critical_path(graph, rows))


def critical_path(graph: Graph, rows) -> int:
    """Cycles from the inputs to the last output along the slowest path (a chain: the sum)."""
    done = {name: 0 for name in graph.input_names}
    for layer, row in zip(graph.layers, rows):
        done[layer.name] = max(done[s] for s in layer.inputs) + row.latency_cycles
    return max(done[name] for name in graph.outputs)


# -- dense ------------------------------------------------------------------------------
def adder_depth(terms: int) -> int:
    """Levels of a balanced adder tree over ``terms`` operands."""
    return math.ceil(math.log2(terms)) if terms > 1 else 0


def _pipeline_ffs(terms_per_output: np.ndarray, width: int, levels_per_cycle: int) -> tuple[int, int]:
    """Registers of a pipelined adder tree: at every cut, each output's live partial sums.

    Returns (flip-flops, cycles through the tree)."""
    depth = adder_depth(int(terms_per_output.max(initial=0)))
    cycles = math.ceil(depth / levels_per_cycle)
    ffs = 0
    for cut in range(1, cycles):
        live = np.ceil(terms_per_output / 2 ** (cut * levels_per_cycle))
        ffs += int(live[terms_per_output > 0].sum()) * width
    return ffs, cycles


@rule("dense")
def dense(layer, in_shape, in_t: Fixed, options: Options) -> LayerResources:
    if options.strategy == "da":
        return dense_da_estimate(layer, in_shape, in_t, options)
    w, b = dense_integers(layer)
    n_out, n_in = w.shape
    x_bits, acc_bits = in_t.width, layer.accum_t.width
    out_bits = layer.result_t.width
    dsp_a, dsp_b = options.dsp_shape
    reuse = options.reuse_factor
    nonzero = w != 0
    terms = nonzero.sum(axis=1) + (b != 0)
    levels = options.adder_levels_per_cycle

    if reuse == 1:
        # Fully unrolled (Latency, or Resource at reuse 1, whose arrays are fully
        # partitioned): every weight is a constant the synthesizer folds.
        dsp = lut = 0
        counts = {"zero": int((~nonzero).sum()), "shift": 0, "lut": 0, "dsp": 0}
        absorbed_adds = 0
        for value in w[nonzero]:
            digits, sig = csd_digits(value), significant_bits(value)
            if digits == 1:
                counts["shift"] += 1
            elif digits <= CSD_DIGITS_IN_LUTS or x_bits + sig + 1 <= NARROW_PRODUCT_BITS:
                counts["lut"] += 1
                lut += (digits - 1) * (x_bits + sig)
            else:
                counts["dsp"] += 1
                dsp += dsp_tiles(x_bits, sig + 1, dsp_a, dsp_b)
                absorbed_adds += 1  # the DSP's post-adder takes this product's addition
        adds = int(np.maximum(terms - 1, 0).sum()) - min(absorbed_adds, int(np.maximum(terms - 1, 0).sum()))
        lut += adds * acc_bits
        tree_ffs, tree_cycles = _pipeline_ffs(terms, acc_bits, levels)
        mult_cycles = 1 if counts["dsp"] else 0
        latency = mult_cycles + max(tree_cycles, 1)
        ff = tree_ffs + n_out * out_bits
        return LayerResources(layer.name, layer.kind, dsp=dsp, lut=lut + n_out * out_bits // 2, ff=ff,
                              latency_cycles=latency, ii=1, products=counts,
                              method="unrolled constant products (reuse 1)")

    # Shared multipliers: the weights reach them through multiplexers or memories, so they
    # are no longer constants the synthesizer can fold.
    w_bits = layer.weight_t.width
    if options.strategy == "latency":
        # hls4ml nnet_dense_latency: multiplier_limit = ceil(n_in*n_out/R) - floor(n_zeros/R)
        zeros = int((~nonzero).sum())
        multipliers = math.ceil(w.size / reuse) - zeros // reuse
    else:
        # hls4ml nnet_dense_resource: block_factor = ceil(n_in*n_out/R); zeros are multiplied too.
        multipliers = math.ceil(w.size / reuse)
    multipliers = max(multipliers, 1)
    narrow = x_bits + w_bits <= NARROW_PRODUCT_BITS
    if narrow:
        dsp, mult_luts = 0, int(multipliers * LUT_MULTIPLIER_FACTOR * x_bits * w_bits)
    else:
        dsp, mult_luts = multipliers * dsp_tiles(x_bits, w_bits, dsp_a, dsp_b), 0
    # A reuse-to-one input multiplexer per multiplier operand (a LUT6 is a 4:1 mux).
    mux_luts = multipliers * (x_bits + (w_bits if options.strategy == "latency" else 0)) * math.ceil((reuse - 1) / 3)
    acc_luts = (0 if not narrow else multipliers * acc_bits) + n_out * acc_bits
    bram, rom_luts = 0, 0
    if options.strategy == "resource":
        bits_per_partition = reuse * w_bits
        if bits_per_partition < LUTRAM_MAX_BITS:
            rom_luts = multipliers * w_bits * math.ceil(reuse / 64)
        else:
            bram = math.ceil(multipliers / 2) * math.ceil(w_bits / _bram18_width(reuse))
    lut = mult_luts + mux_luts + acc_luts + rom_luts
    ff = n_out * acc_bits + multipliers * (x_bits + acc_bits) + n_out * out_bits
    latency = reuse + 1 + math.ceil(adder_depth(math.ceil(n_in / reuse)) / levels) + (1 if dsp else 0)
    return LayerResources(layer.name, layer.kind, dsp=dsp, lut=lut, ff=ff, bram_18k=bram,
                          latency_cycles=latency, ii=reuse,
                          products={"multipliers": multipliers, "in_dsp": not narrow},
                          method=f"{multipliers} shared multipliers (reuse {reuse})")


def _bram18_width(depth: int) -> int:
    """Widest port of an 18Kb block RAM at this depth (UG473 / UG573: 512x36 ... 16Kx1)."""
    for max_depth, width in ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)):
        if depth <= max_depth:
            return width
    return 1


# -- element-wise and pass-through layers ----------------------------------------------
@rule("relu")
def relu(layer, in_shape, in_t: Fixed, options: Options) -> LayerResources:
    # One LUT per output bit: the sign bit gates each bit (hls4ml merges it into the
    # previous pipeline stage, so no cycle of its own).
    n = int(np.prod(in_shape))
    return LayerResources(layer.name, layer.kind, lut=n * layer.result_t.width, latency_cycles=0,
                          ii=1, method="sign-gated bits")


@rule("quantize")
def quantize_elements(layer, in_shape, in_t: Fixed, options: Options) -> LayerResources:
    """Each element's own cast: wiring to its bits, a rounding adder and a range check (SAT)
    of its width; one cycle."""
    widths = np.broadcast_to(layer.widths, tuple(in_shape))
    per_bit = int(layer.rounding.value != "TRN") + int(layer.overflow.value == "SAT")  # TRN and WRAP are wiring
    lut = int(widths.sum()) * per_bit
    return LayerResources(layer.name, layer.kind, lut=lut, ff=int(widths.sum()), latency_cycles=1, ii=1,
                          method="per-element casts")


@rule("batchnorm")
def batchnorm(layer, in_shape, in_t: Fixed, options: Options) -> LayerResources:
    """Per element a product by its channel's constant scale (classified as a Dense weight at
    reuse 1: a shift, LUTs, or a DSP), the bias addition, and the result cast; one cycle."""
    scales, _, frac = batchnorm_grid(layer, in_t)
    positions = int(np.prod(in_shape)) // layer.channels
    dsp_a, dsp_b = options.dsp_shape
    sum_bits = in_t.width + max(significant_bits(int(s)) for s in scales) + 1
    dsp = lut = 0
    counts = {"zero": 0, "shift": 0, "lut": 0, "dsp": 0}
    for value in scales:
        digits, sig = csd_digits(int(value)), significant_bits(int(value))
        if value == 0:
            counts["zero"] += positions
        elif digits == 1:
            counts["shift"] += positions
        elif digits <= CSD_DIGITS_IN_LUTS or in_t.width + sig + 1 <= NARROW_PRODUCT_BITS:
            counts["lut"] += positions
            lut += positions * (digits - 1) * (in_t.width + sig)
        else:
            counts["dsp"] += positions
            dsp += positions * dsp_tiles(in_t.width, sig + 1, dsp_a, dsp_b)
    n = int(np.prod(in_shape))
    lut += n * sum_bits + n * layer.result_t.width // 2  # the bias addition and the cast
    return LayerResources(layer.name, layer.kind, dsp=dsp, lut=lut, ff=n * layer.result_t.width, latency_cycles=1,
                          ii=1, products=counts, method="constant per-channel products")


@rule("flatten")
@rule("reshape")
@rule("identity")
@rule("softmax")
def passthrough(layer, in_shape, in_t: Fixed, options: Options) -> LayerResources:
    return LayerResources(layer.name, layer.kind, method="wiring (no logic)")
