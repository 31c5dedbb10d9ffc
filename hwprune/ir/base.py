"""Base classes of the IR layers (``hwprune.ir.layers`` holds the concrete ones)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import ClassVar, Optional

import numpy as np

from hwprune.errors import ShapeError, WeightError
from hwprune.ir.fixed import Fixed

Shape = tuple[int, ...]
#: ``Layer.arity`` of a layer that reads two or more inputs.
VARIADIC = -1


@dataclass(frozen=True, eq=False)
class Layer:
    """One node of a graph. ``inputs`` names the tensors it reads, in operand order: the
    names of earlier layers (a layer's name is its output tensor's) or of graph inputs.
    ``Graph.chain`` fills it in for a layer that reads the previous layer's output."""

    name: str
    inputs: tuple[str, ...] = field(default=(), kw_only=True)

    kind: ClassVar[str] = "layer"
    #: Whether the layer produces new values (and so carries a ``result_t``); a layer that
    #: does not passes its (single) input's type on.
    computes: ClassVar[bool] = False
    #: How many inputs it reads: a number, or ``VARIADIC`` (two or more).
    arity: ClassVar[int] = 1
    #: Carries a weight array and hls4ml's four types (``WeightedLayer``).
    weighted: ClassVar[bool] = False
    #: Slides a window over a spatial axis (conv, pooling) and so needs a channels-last input.
    spatial: ClassVar[bool] = False
    #: Output element i depends on input element i only (its shape passes through).
    elementwise: ClassVar[bool] = False
    #: Moves no data: its output is its input, reinterpreted (Flatten, Reshape, Softmax's marker).
    passthrough: ClassVar[bool] = False
    #: Output channel c (the last axis) reads input channel c only, the same way for every
    #: channel (activations, pooling): a channel can be removed from its input and output alike.
    #: An instance with per-channel parameters (PReLU) says otherwise through ``per_channel``.
    channelwise: ClassVar[bool] = False

    def output_shape(self, *input_shapes: Shape) -> Shape:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray)}

    def types(self) -> dict[str, Optional[Fixed]]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name.endswith("_t")}

    def is_quantized(self) -> bool:
        return all(t is not None for t in self.types().values())

    def with_(self, **changes) -> "Layer":
        return replace(self, **changes)

    def mac_count(self, *input_shapes: Shape, nonzero_only: bool = False) -> int:
        """Multiply-accumulates per inference for these input shapes (0 without weights)."""
        return 0


@dataclass(frozen=True, eq=False)
class WeightedLayer(Layer):
    """A layer with a weight array whose first axis is the output channel/unit, a bias per
    output, and hls4ml's four types. Fixed-point semantics (hls4ml's): per output,
    ``acc = accum(bias)``, then for each weight of the filter in storage order
    ``acc = accum(acc + accum(x_i * w_i))``, then ``y = result(acc)``."""

    weight: np.ndarray = None  # type: ignore[assignment]
    bias: np.ndarray = None  # type: ignore[assignment]
    weight_t: Optional[Fixed] = None
    bias_t: Optional[Fixed] = None
    accum_t: Optional[Fixed] = None
    result_t: Optional[Fixed] = None

    computes: ClassVar[bool] = True
    weighted: ClassVar[bool] = True
    #: Number of weight axes and what they mean (for error messages).
    weight_axes: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        w = np.asarray(self.weight, dtype=np.float64)
        if w.ndim != len(self.weight_axes):
            raise ShapeError(f"layer {self.name!r}: {type(self).__name__} weight must be {len(self.weight_axes)}-D "
                             f"({', '.join(self.weight_axes)}), got shape {w.shape}")
        b = np.zeros(w.shape[0]) if self.bias is None else np.asarray(self.bias, dtype=np.float64)
        if b.shape != (w.shape[0],):
            raise ShapeError(f"layer {self.name!r}: bias shape {b.shape} does not match {w.shape[0]} outputs")
        for label, arr in (("weight", w), ("bias", b)):
            if not np.all(np.isfinite(arr)):
                idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
                raise WeightError(f"layer {self.name!r}: {label} has a non-finite value {arr[idx]} at index {idx}")
        w.setflags(write=False)
        b.setflags(write=False)
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def filter_matrix(self) -> np.ndarray:
        """``(outputs, weights per output)``: what storage formats encode."""
        return self.weight.reshape(self.weight.shape[0], -1)

    @property
    def nonzero_weights(self) -> int:
        return int(np.count_nonzero(self.weight))
