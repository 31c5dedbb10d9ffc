"""dense and csr, the registry of formats and the choice of one per layer (the package
docstring says what a format is)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Union

import numpy as np

from hwprune.backends.c.plan_spatial import CONV_KINDS, window
from hwprune.errors import ModelError, OptionError
from hwprune.ir.layers import WeightedLayer
from hwprune.paths import templates_dir
from hwprune.reference import dense_integers

# "code": data the kernel carries in its instructions (not written to model_weights.h);
# its flash is ``LayerStorage.code_bytes``, an estimate until the firmware is built.
ROLES = ("value", "index", "pointer", "bias", "code")
C_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4,
            "int64_t": 8, "uint64_t": 8}


@dataclass(frozen=True, eq=False)
class EncodedArray:
    """One C array of a layer: ``<layer>_<name>``, elements of ``c_type``."""

    name: str
    role: str
    c_type: str
    data: np.ndarray  # int64, one dimension

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"array role must be one of {ROLES}, got {self.role!r}")
        data = np.asarray(self.data, dtype=np.int64).reshape(-1)
        lo, hi = c_type_range(self.c_type)
        if data.size and (data.min() < lo or data.max() > hi):
            raise ValueError(f"array {self.name!r}: values {data.min()}..{data.max()} do not fit {self.c_type}")
        data.setflags(write=False)
        object.__setattr__(self, "data", data)

    @property
    def nbytes(self) -> int:
        return int(self.data.size) * C_BYTES[self.c_type]


@dataclass(frozen=True, eq=False)
class LayerStorage:
    """A Dense layer's weights and bias encoded in one format, with its byte counts."""

    name: str
    format: str
    out_features: int
    in_features: int
    nonzero_weights: int
    arrays: tuple[EncodedArray, ...]
    params: tuple[tuple[str, int], ...] = ()  # what the kernel needs besides arrays (e.g. a bit width)
    code_bytes: int = 0  # flash of weights held as instructions (the unrolled format)
    family: str = "dense"  # the kernel family: "dense" or "conv" (``kernel_family``)
    positions: int = 1  # output positions the filter matrix runs at (a conv's, when its input shape was given)

    @property
    def total_weights(self) -> int:
        return self.out_features * self.in_features

    def _bytes(self, role: str) -> int:
        return sum(a.nbytes for a in self.arrays if a.role == role)

    @property
    def value_bytes(self) -> int:
        return self._bytes("value")

    @property
    def index_bytes(self) -> int:
        return self._bytes("index")

    @property
    def pointer_bytes(self) -> int:
        return self._bytes("pointer")

    @property
    def bias_bytes(self) -> int:
        return self._bytes("bias")

    @property
    def weight_bytes(self) -> int:
        """Values + indices + pointers (+ weights held as code): everything that stores the weight matrix."""
        return self.value_bytes + self.index_bytes + self.pointer_bytes + self.code_bytes

    @property
    def param(self) -> dict[str, int]:
        return dict(self.params)

    @property
    def bits_per_nonzero(self) -> float:
        return self.weight_bytes * 8 / max(self.nonzero_weights, 1)

    @property
    def entropy_bits(self) -> float:
        """log2 C(n, k): the bits any encoding needs just to say where the nonzeros are."""
        return log2_binomial(self.total_weights, self.nonzero_weights)

    def array(self, name: str) -> EncodedArray:
        for a in self.arrays:
            if a.name == name:
                return a
        raise KeyError(f"layer {self.name!r} ({self.format}) has no array {name!r}")

    def has(self, name: str) -> bool:
        return any(a.name == name for a in self.arrays)

    def summary(self) -> dict:
        """Plain numbers for reports and JSON."""
        return {
            "layer": self.name, "format": self.format, "total_weights": self.total_weights,
            "nonzero_weights": self.nonzero_weights, "value_bytes": self.value_bytes,
            "index_bytes": self.index_bytes, "pointer_bytes": self.pointer_bytes, "bias_bytes": self.bias_bytes,
            **({"code_bytes": self.code_bytes} if self.code_bytes else {}), **dict(self.params),
            "weight_bytes": self.weight_bytes, "bits_per_nonzero": round(self.bits_per_nonzero, 3),
            "entropy_bits": round(self.entropy_bits, 3),
        }


def log2_binomial(n: int, k: int) -> float:
    if not 0 <= k <= n:
        raise ValueError(f"log2 C({n}, {k}) is undefined")
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def c_type_range(c_type: str) -> tuple[int, int]:
    if c_type not in C_BYTES:
        raise ValueError(f"not a fixed-width C integer type: {c_type!r}")
    bits = 8 * C_BYTES[c_type]
    if c_type.startswith("u"):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def narrowest_unsigned(max_value: int) -> str:
    for c_type in ("uint8_t", "uint16_t", "uint32_t", "uint64_t"):
        if max_value <= c_type_range(c_type)[1]:
            return c_type
    raise ValueError(f"{max_value} does not fit 64 bits")


def narrowest_holding(values: np.ndarray) -> str:
    """The narrowest signed (or, for values >= 0 only, also unsigned) type holding ``values``."""
    lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
    for c_type in ("int8_t", "uint8_t", "int16_t", "uint16_t", "int32_t", "uint32_t", "int64_t"):
        t_lo, t_hi = c_type_range(c_type)
        if t_lo <= lo and hi <= t_hi:
            return c_type
    raise ValueError(f"values {lo}..{hi} do not fit 64 bits")


# -- formats ---------------------------------------------------------------------------------


class FormatNotApplicable(OptionError):
    """The weights lack the structure a format needs (e.g. N:M groups); ``auto`` skips it."""


@dataclass(frozen=True)
class StorageFormat:
    """``encode(weights, value_c_type, **params)`` -> arrays; ``decode(arrays, shape, **params)`` -> weights.

    ``choose_params(weights, value_c_type)`` picks per layer what the encoding is parametrised by (a gap
    width, a Rice parameter, the N:M pattern) or raises ``FormatNotApplicable``;
    ``code_bytes(weights)`` estimates flash the kernel spends holding weights as code.
    ``auto`` policies consider a format only when ``in_auto``. A ``spatial`` format needs a
    conv layer's geometry (``plan_spatial.Window``): ``choose_params`` is called with
    ``window=`` (None for a layer without one) and returns what ``encode`` needs of it.
    """

    name: str
    encode: Callable[..., tuple[EncodedArray, ...]]
    decode: Callable[..., np.ndarray]
    description: str
    choose_params: Optional[Callable[[np.ndarray, str], dict[str, int]]] = None
    code_bytes: Optional[Callable[[np.ndarray], int]] = None
    in_auto: bool = True
    spatial: bool = False


def _encode_dense(w: np.ndarray, value_c_type: str) -> tuple[EncodedArray, ...]:
    return (EncodedArray("values", "value", value_c_type, w.reshape(-1)),)


def _decode_dense(arrays: Mapping[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    return np.asarray(arrays["values"]).reshape(shape)


def _encode_csr(w: np.ndarray, value_c_type: str) -> tuple[EncodedArray, ...]:
    rows, cols = np.nonzero(w)  # row-major, so columns ascend within a row: input order
    row_ptr = np.concatenate([[0], np.cumsum(np.count_nonzero(w, axis=1))])
    return (
        EncodedArray("values", "value", value_c_type, w[rows, cols]),
        EncodedArray("columns", "index", narrowest_unsigned(max(w.shape[1] - 1, 0)), cols),
        EncodedArray("row_ptr", "pointer", narrowest_unsigned(int(row_ptr[-1])), row_ptr),
    )


def _decode_csr(arrays: Mapping[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    w = np.zeros(shape, dtype=np.int64)
    ptr = np.asarray(arrays["row_ptr"])
    for j in range(shape[0]):
        span = slice(int(ptr[j]), int(ptr[j + 1]))
        w[j, np.asarray(arrays["columns"])[span]] = np.asarray(arrays["values"])[span]
    return w


FORMATS: dict[str, StorageFormat] = {}


def register_format(fmt: StorageFormat) -> StorageFormat:
    FORMATS[fmt.name] = fmt
    return fmt


register_format(StorageFormat("dense", _encode_dense, _decode_dense, "every weight, row-major"))
register_format(StorageFormat(
    "csr", _encode_csr, _decode_csr,
    "nonzero values, their column (uint8 up to 256 inputs, else uint16) and row pointers",
))

POLICIES = ("auto",)  # besides the format names


def policies() -> tuple[str, ...]:
    return (*POLICIES, *FORMATS)


# -- encoding a layer ------------------------------------------------------------------------


def kernel_family(kind: str) -> str:
    """The kernel template prefix of a weighted layer kind: ``dense`` or ``conv``."""
    return "conv" if kind in ("conv1d", "conv2d") else kind


def formats_for(layer: WeightedLayer) -> list[str]:
    """The registered formats that have a C kernel for this layer's kind, in order."""
    kernels = templates_dir() / "c" / "kernels"
    family = kernel_family(layer.kind)
    return [name for name in FORMATS if (kernels / f"{family}_{name}.c.j2").is_file()]


def window_of(layer, input_shape) -> Optional[object]:
    """The conv geometry the encoder needs, or None for a layer that is not a conv."""
    if input_shape is None or layer.kind not in CONV_KINDS:
        return None
    return window(layer, tuple(input_shape), layer.output_shape(tuple(input_shape)))


def encode(layer: WeightedLayer, format: str, input_shape=None) -> LayerStorage:
    """The layer stored in ``format`` (a name in ``FORMATS``); ``input_shape`` (the layer's,
    channels-last) is needed by spatial formats only."""
    if format not in FORMATS:
        raise OptionError(f"layer {layer.name!r}: unknown storage format {format!r}; choose one of {sorted(FORMATS)}")
    if not layer.is_quantized():
        raise ModelError(f"layer {layer.name!r} is not quantized; the C backend needs a fixed-point graph")
    w, acc0 = dense_integers(layer)
    window = window_of(layer, input_shape)
    storage = encode_matrix(layer.name, w, acc0, layer.weight_t.c_type, format, window)
    positions = window.out_h * window.out_w if window is not None else 1
    return dataclasses.replace(storage, family=kernel_family(layer.kind), positions=positions)


def encode_matrix(name: str, w: np.ndarray, acc0: np.ndarray, value_c_type: str, format: str,
                  window=None) -> LayerStorage:
    """Any 2-D integer matrix ``(out, in)`` (a Dense weight, a conv filter bank reshaped to
    ``(out, -1)``) and its accumulator-typed bias, stored in ``format`` (``window``: a conv's
    geometry, for spatial formats)."""
    fmt = FORMATS[format]
    w = np.asarray(w, dtype=np.int64)
    if w.ndim != 2:
        raise ModelError(f"layer {name!r}: storage formats take a 2-D weight matrix, got shape {w.shape}")
    try:
        if fmt.spatial:
            params = fmt.choose_params(w, value_c_type, window=window)
        else:
            params = fmt.choose_params(w, value_c_type) if fmt.choose_params else {}
    except FormatNotApplicable as exc:
        raise FormatNotApplicable(f"layer {name!r}: {exc}") from None
    arrays = fmt.encode(w, value_c_type, **params)
    if np.any(acc0 != 0):
        arrays = (*arrays, EncodedArray("bias", "bias", narrowest_holding(acc0), acc0))
    code = fmt.code_bytes(w) if fmt.code_bytes else 0
    return LayerStorage(name, format, w.shape[0], w.shape[1], int(np.count_nonzero(w)), tuple(arrays),
                        tuple(sorted(params.items())), code)


def decode_weights(storage: LayerStorage) -> np.ndarray:
    """The integer weight matrix back from its arrays (a check of the encoder)."""
    arrays = {a.name: a.data for a in storage.arrays}
    return FORMATS[storage.format].decode(arrays, (storage.out_features, storage.in_features), **storage.param)


def usable_formats(layer: WeightedLayer) -> list[str]:
    """The formats with a kernel for the layer's kind."""
    return formats_for(layer) if layer.kind != "dense" else [f for f in FORMATS if not FORMATS[f].spatial]


def candidates(layer: WeightedLayer, input_shape=None) -> list[LayerStorage]:
    """The layer in every format ``auto`` considers, that has a kernel for the layer's kind
    and whose structure the layer has."""
    out = []
    for name in usable_formats(layer):
        if not FORMATS[name].in_auto:
            continue
        try:
            out.append(encode(layer, name, input_shape))
        except FormatNotApplicable:
            continue
    return out


def choose_format(layer: WeightedLayer, policy: str = "auto", input_shape=None) -> LayerStorage:
    """The layer encoded by ``policy``: a format name, or ``auto`` for the fewest weight
    bytes (the earliest registered format, dense first, on a tie) among the formats with a
    kernel for the layer's kind."""
    usable = usable_formats(layer)
    if policy == "auto":
        return min(candidates(layer, input_shape), key=lambda s: s.weight_bytes)  # min keeps the first of equals
    if policy not in FORMATS:
        raise OptionError(f"layer {layer.name!r}: unknown format policy {policy!r}; choose one of {list(policies())}")
    if policy not in usable:
        raise OptionError(f"layer {layer.name!r}: format {policy!r} has no {layer.kind} kernel; choose one of {usable}")
    return encode(layer, policy, input_shape)


FormatSpec = Union[str, Mapping[str, str]]


OPTIMIZE = ("size", "speed", "balanced")
