"""QKeras layers -> IR layers carrying the fixed-point types their quantizers declare.

QKeras (google/qkeras, ``qkeras/quantizers.py``) quantizes with

- ``quantized_bits(bits, integer, symmetric, keep_negative, alpha)``: with ``alpha`` None
  or 1 the value ``x`` becomes ``clip(round(x * 2^f), lo, 2^(bits-s) - 1) / 2^f``, where
  ``s = keep_negative`` (a sign bit), ``f = bits - s - integer`` and ``lo`` is
  ``-2^(bits-1)`` (``-2^(bits-1) + 1`` when ``symmetric``; 0 without ``keep_negative``):
  the grid of ``fixed<bits, integer + s>`` (``ufixed`` without sign), saturating;
- ``quantized_relu(bits, integer)``: ``clip(round(x * 2^(bits-integer)), 0, 2^bits - 1) /
  2^(bits-integer)``: ``ufixed<bits, integer>`` after a ReLU, saturating;
- ``quantized_po2(bits, max_value)`` on weights: ``sign(x) * 2^round(log2|x|)``, the exponent
  clipped to the range ``bits`` gives it; the weights get the narrowest type that holds them.
  QKeras takes the exponent from float32's ``log``: a weight whose ``log2`` lies within 8
  float32 steps of a rounding boundary (``|x|`` near ``2^(k + 1/2)``) is refused, not guessed;

and ``round`` is TensorFlow's, which rounds half to even: ``Rounding.RND_CONV``
(``AP_RND_CONV``, as hls4ml types QKeras outputs). Weights and biases are quantized here
with that formula, exactly (a float32 weight times a power of two is exact); the layers'
own sums are float in QKeras and exact here (``quant.exact.complete_types`` gives them
types that hold them), so the only roundings are the quantizers'.

Layers: QDense, QConv1D, QConv2D (kernel and bias quantizers; ``activation`` a Keras
activation or a quantizer), QActivation (a quantizer or a Keras activation). A quantizer
is a serialized object (``{"class_name": ..., "config": ...}``) or the string QKeras also
accepts (``"quantized_relu(3,1)"``), read as literals, never evaluated. Refused with one
line: ``alpha`` other than None or 1 (per-channel scales), ``quantized_po2`` on activations, stochastic
rounding, a leaky or bounded ``quantized_relu``, QBatchNormalization, and a weight or bias
so large that QKeras's own float32 ``x + (q - x)`` is not ``q`` (``Quantizer.values``). A float BatchNorm
next to a quantized layer stays a layer of its own (folding it would move the weights off
their declared grid), computed exactly (``quant.exact``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hwprune.errors import UnsupportedLayerError
from hwprune.frontends.keras_builder import Builder
from hwprune.frontends.keras_layers import CONVERTERS, _activation, converter
from hwprune.ir.layers import Clip, ReLU
from hwprune.quant.exact import exact_type
from hwprune.ir.fixed import Fixed, Overflow, Rounding

QUANTIZERS = ("quantized_bits", "quantized_relu", "quantized_po2")
#: Keras' ``epsilon()``: a weight below it in magnitude is the smallest power of two.
EPSILON = np.float32(1e-7)
#: How many float32 steps ``log2|w|`` may come to a rounding boundary before float32's ``log``
#: (which QKeras rounds; it errs by an ulp or two) could land on either side; such a weight
#: is refused, not guessed.
LOG2_MARGIN_ULPS = 8


@dataclass(frozen=True)
class Quantizer:
    """One QKeras quantizer with a fixed-point grid."""

    kind: str  # quantized_bits, quantized_relu or quantized_po2 (weights only)
    bits: int
    integer: int
    symmetric: bool = False
    keep_negative: bool = True
    max_value: Optional[float] = None  # quantized_po2
    @property
    def t(self) -> Fixed:
        if self.kind == "quantized_relu":
            return Fixed(self.bits, self.integer, False, Rounding.RND_CONV, Overflow.SAT)
        sign = int(self.keep_negative)
        return Fixed(self.bits, self.integer + sign, bool(sign), Rounding.RND_CONV, Overflow.SAT)

    @property
    def lowest(self) -> int:
        """The smallest integer the quantizer yields."""
        if self.kind == "quantized_relu" or not self.keep_negative:
            return 0
        return self.t.min_int + int(bool(self.symmetric))

    def integers(self, x: np.ndarray) -> np.ndarray:
        """QKeras's formula on float values: the integers of ``t`` (numpy rounds half to even)."""
        scaled = np.ldexp(np.asarray(x, dtype=np.float64), self.t.frac_bits)
        return np.clip(np.round(scaled), self.lowest, self.t.max_int).astype(np.int64)

    def values(self, x: np.ndarray, where: str = "") -> np.ndarray:
        if self.kind == "quantized_po2":
            return self._powers_of_two(np.asarray(x, dtype=np.float64), where)
        values = np.ldexp(self.integers(x).astype(np.float64), -self.t.frac_bits)
        # QKeras returns its straight-through form x + (q - x), in float32: q itself while x's
        # float32 step is finer than the grid's, off the grid beyond (quantized_bits(6, 0) of
        # 2^19 + 1 is 1.0, of 2^25 is 0.0). Such a value is refused, not saturated.
        x32 = np.asarray(x, dtype=np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            straight = (x32 + (-x32 + values.astype(np.float32))).astype(np.float64)
        off = straight != values
        if np.any(off):
            index = tuple(int(i) for i in np.argwhere(off)[0])
            raise UnsupportedLayerError(
                f"{where}: {self.kind} of {float(x32[index])!r} (index {index}) is {float(straight[index])!r} in QKeras "
                f"(float32's x + (q - x)), off the grid of {self.t}; saturating it would give {float(values[index])!r}")
        return values

    def _powers_of_two(self, x: np.ndarray, where: str) -> np.ndarray:
        """QKeras's ``quantized_po2`` (log2 rounding "rnd"): ``sign(x) * 2^clip(round(log2|x|),
        min_exp, max_exp)``, a zero counted positive, ``|x| < epsilon`` the smallest power."""
        need_sign = 0 if self.max_value is not None and self.max_value <= 1 else 1
        effect = self.bits - 1 - need_sign
        min_exp, max_exp = -(2 ** effect), 2 ** effect - 1
        magnitude = np.abs(x)
        if self.max_value is not None:
            magnitude = np.minimum(magnitude, self.max_value)
        tiny = np.abs(x) < EPSILON
        log2 = np.log2(np.where(tiny, 1.0, magnitude))
        margin = LOG2_MARGIN_ULPS * np.spacing(np.abs(log2).astype(np.float32)).astype(np.float64)
        near = ~tiny & (np.abs(log2 - np.floor(log2) - 0.5) < margin)
        if np.any(near):
            index = tuple(int(i) for i in np.argwhere(near)[0])
            raise UnsupportedLayerError(f"{where}: quantized_po2 of {x[index]!r} (index {index}) lies halfway between "
                                        "two powers of two, where float32's log decides; hwprune does not guess it")
        exponent = np.where(tiny, min_exp, np.clip(np.round(log2), min_exp, max_exp))
        return np.where(x >= 0, 1.0, -1.0) * np.ldexp(1.0, exponent.astype(np.int64))


def _from_string(text: str, where: str) -> tuple[str, dict]:
    """``"quantized_relu(3,1)"`` -> ("quantized_relu", {"bits": 3, "integer": 1}); literals only."""
    if len(text) > 200:  # a quantizer call is short; a long string is not one
        raise UnsupportedLayerError(f"{where}: cannot read the quantizer {text[:40]!r}...")
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        raise UnsupportedLayerError(f"{where}: cannot read the quantizer {text!r}") from None
    if isinstance(node, ast.Name):
        return node.id, {}
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise UnsupportedLayerError(f"{where}: cannot read the quantizer {text!r}")
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except (ValueError, TypeError, SyntaxError, RecursionError):
        raise UnsupportedLayerError(f"{where}: the quantizer {text!r} has arguments that are not literals") from None
    names = ("bits", "integer", "symmetric", "keep_negative", "alpha") if node.func.id == "quantized_bits" else (
        "bits", "integer", "use_sigmoid", "negative_slope")
    return node.func.id, {**dict(zip(names, args)), **kwargs}


def parse_quantizer(spec, where: str):
    """A ``Quantizer``, or the Keras activation name a QActivation may hold instead; None
    for no quantizer."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if "(" not in spec and spec not in QUANTIZERS:
            return spec  # a Keras activation: relu, linear, softmax, ...
        kind, config = _from_string(spec, where)
    else:
        kind, config = spec["class_name"], dict(spec.get("config") or {})
    if kind not in QUANTIZERS:
        raise UnsupportedLayerError(f"{where}: quantizer {kind!r} is not supported (quantized_bits with alpha None "
                                    "or 1, quantized_relu, and quantized_po2 on weights are)")
    if config.get("use_stochastic_rounding"):
        raise UnsupportedLayerError(f"{where}: {kind} with stochastic rounding has no fixed integer semantics")
    bits, integer = int(config.get("bits", 8)), int(config.get("integer", 0))
    if kind == "quantized_po2":
        if config.get("quadratic_approximation") or config.get("log2_rounding", "rnd") != "rnd":
            raise UnsupportedLayerError(f"{where}: quantized_po2 with quadratic_approximation or floor rounding is "
                                        "not supported")
        if bits < 2:
            raise UnsupportedLayerError(f"{where}: quantized_po2 with {bits} bit(s) is not supported")
        max_value = config.get("max_value")
        return Quantizer(kind, bits, 0, max_value=None if max_value is None else float(max_value))
    if kind == "quantized_bits":
        alpha = config.get("alpha")
        if alpha is not None and not (isinstance(alpha, (int, float)) and float(alpha) == 1.0):
            raise UnsupportedLayerError(f"{where}: quantized_bits with alpha={alpha!r} (a scale per channel) is not "
                                        "supported; alpha None or 1 is")
        keep_negative = bool(config.get("keep_negative", True))
        if bits - int(keep_negative) < 1:
            raise UnsupportedLayerError(f"{where}: quantized_bits with {bits} bit(s) is a binary quantizer; "
                                        "it is not supported")
        return Quantizer(kind, bits, integer, bool(config.get("symmetric", False)), keep_negative)
    if float(config.get("negative_slope", 0.0) or 0.0) != 0.0 or config.get("use_sigmoid"):
        raise UnsupportedLayerError(f"{where}: quantized_relu with negative_slope or use_sigmoid is not supported")
    if config.get("relu_upper_bound") is not None:
        raise UnsupportedLayerError(f"{where}: quantized_relu with relu_upper_bound is not supported")
    return Quantizer(kind, bits, integer)


def _quantizer_layer(builder: Builder, keras_name: str, name: str, activation) -> None:
    """A quantizer as a layer: quantized_relu a ReLU of its type, quantized_bits a Clip to
    its range (the clamp and the saturating cast agree; a symmetric one drops the lowest
    value). A Keras activation name is the plain activation."""
    q = parse_quantizer(activation, f"layer {keras_name!r}")
    if q is None or isinstance(q, str):
        _activation(builder, keras_name, name, q)
        return
    if q.kind == "quantized_po2":
        raise UnsupportedLayerError(f"layer {keras_name!r}: quantized_po2 on activations is not supported (on weights "
                                    "it is)")
    name = f"{name}_quant" if builder.current == name else name
    if q.kind == "quantized_relu":
        builder.add(ReLU(name, result_t=q.t))
    else:
        t = q.t
        builder.add(Clip(name, min_value=float(np.ldexp(q.lowest, -t.frac_bits)), max_value=t.max_value, result_t=t))


def _weighted(class_name: str):
    plain = CONVERTERS[class_name[1:]]  # QDense -> the Dense converter

    def convert(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
        where = f"layer {keras_name!r} ({class_name})"
        if builder.pending_norm is not None:  # folding it would move the weights off their grid
            builder.current = builder.normalize_pending()
        kernel_q = parse_quantizer(config.get("kernel_quantizer"), f"{where}: kernel_quantizer")
        bias_q = parse_quantizer(config.get("bias_quantizer"), f"{where}: bias_quantizer")
        for label, q in (("kernel_quantizer", kernel_q), ("bias_quantizer", bias_q)):
            if isinstance(q, str):
                raise UnsupportedLayerError(f"{where}: {label} {q!r} is not a quantizer")
        if kernel_q is None:
            raise UnsupportedLayerError(f"{where}: no kernel_quantizer; its float weights have no declared type")
        arrays = list(weights)
        if arrays:
            arrays[0] = kernel_q.values(arrays[0], f"{where}: kernel")
        if len(arrays) > 1 and bias_q is not None:
            arrays[1] = bias_q.values(arrays[1], f"{where}: bias")
        plain(builder, keras_name, name, {**config, "activation": "linear"}, tuple(arrays))
        layer = builder.layers[-1]
        # powers of two have no grid of their own: the narrowest type that holds them
        typed = lambda q, values, what: (q.t if q.kind != "quantized_po2"  # noqa: E731
                                         else exact_type(values, f"{where}: {what}"))
        bias_t = (typed(bias_q, layer.bias, "bias") if bias_q is not None and len(arrays) > 1
                  else exact_type(layer.bias, f"{where}: bias"))
        builder.layers[-1] = layer.with_(weight_t=typed(kernel_q, layer.weight, "kernel"), bias_t=bias_t)
        builder.open_linear = False  # a BatchNorm after it cannot fold exactly
        builder.linear.discard(layer.name)
        _quantizer_layer(builder, keras_name, name, config.get("activation"))

    return convert


for _class in ("QDense", "QConv1D", "QConv2D"):
    CONVERTERS[_class] = _weighted(_class)


@converter("QActivation")
def _qactivation(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    _quantizer_layer(builder, keras_name, name, config.get("activation"))

