"""The IR graph a Keras model becomes, built one Keras layer at a time.

A Keras layer reads the outputs of other layers (``inbound_nodes``; in a Sequential model,
the layer before it) and becomes zero or more IR layers. ``Builder.begin`` points the
builder at the IR tensors a layer reads, converters ``add`` IR layers after them (each
reading the previous one) or ``merge`` them, and ``finish`` records the IR tensor that
stands for the layer's output. A BatchNormalization folds into the Dense or Conv right
before it when that layer's output has no other reader, or else waits for the next Dense
(through a Flatten); where neither exists (the model's first layer before a conv, after an
activation or a merge, before a merge, at an output) it is an IR BatchNorm layer.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from hwprune.errors import ModelError, UnsupportedLayerError, WeightError
from hwprune.ir.activations import BatchNorm
from hwprune.ir.graph import INPUT, Graph, GraphInput
from hwprune.ir.layers import Dense, Flatten, Layer


class Builder:
    """The IR layers made so far, the IR tensor each Keras layer's output is, and the state
    of the layer being converted: the tensors it reads, the current tensor and its shape,
    a BatchNorm waiting to fold."""

    def __init__(self, input_shape: tuple[int, ...], readers: Optional[dict[str, int]] = None):
        self.input_shape = tuple(input_shape)
        self.layers: list[Layer] = []
        self.shapes: dict[str, tuple] = {INPUT: self.input_shape}
        self.tensors: dict[str, str] = {}  # Keras layer name -> IR tensor name
        # Keras layer name -> the BatchNorm (name, scale, shift, IR name) waiting after it
        self.norms: dict[str, tuple] = {}
        self.normalized: dict[tuple[str, str], str] = {}  # (norm, IR tensor) -> the BatchNorm layer made for it
        self.readers = readers or {}  # Keras layer name -> how many layers read its output
        self.linear: set[str] = set()  # IR tensors a Dense or Conv wrote with nothing applied after
        self.inputs: list[str] = [INPUT]
        self.current = INPUT
        self.open_linear = False  # a norm may fold into the layer that wrote ``current``
        self.pending_norm: Optional[tuple[str, np.ndarray, np.ndarray, str]] = None
        self.last = ""  # the Keras layer converted last

    # -- one Keras layer -------------------------------------------------------------------------
    def begin(self, keras_name: str, sources: tuple[str, ...]) -> None:
        """Start converting ``keras_name``, which reads the outputs of the Keras layers
        ``sources`` (none: the model's input)."""
        missing = [s for s in sources if s not in self.tensors]
        if missing:
            raise ModelError(f"layer {keras_name!r} reads {missing}, which no earlier layer of the model writes")
        self.inputs = [self.tensors[s] for s in sources] or [INPUT]
        if len(sources) > 1:  # a merge: each norm waiting on an operand becomes a layer
            self.inputs = [self._normalize(self.norms[s], t) if s in self.norms else t
                           for s, t in zip(sources, self.inputs)]
        self.current = self.inputs[0]
        waiting = [self.norms[s] for s in sources if s in self.norms]
        self.pending_norm = waiting[0] if waiting and len(sources) == 1 else None
        self.open_linear = (len(sources) == 1 and self.current in self.linear
                            and self.readers.get(sources[0], 1) == 1)

    def finish(self, keras_name: str) -> None:
        self.tensors[keras_name] = self.current
        self.last = keras_name
        if self.pending_norm is not None:
            self.norms[keras_name] = self.pending_norm

    @property
    def shape(self) -> tuple[int, ...]:
        return self.shapes[self.current]

    def add(self, layer: Layer, linear: bool = False) -> None:
        """Append a one-input layer reading the current tensor; it becomes the current one."""
        if self.pending_norm is not None and not isinstance(layer, Flatten):
            if isinstance(layer, Dense) and layer.weight_t is None:
                layer = self._fold_into_next(layer)
            else:  # nothing to fold into: the norm is a layer of its own
                self.current = self.normalize_pending()
        self._append(layer.with_(inputs=(self.current,)))
        self.open_linear = linear
        if linear:
            self.linear.add(self.current)

    def merge(self, layer: Layer) -> None:
        """Append a layer reading every tensor the Keras layer reads."""
        if len(self.inputs) < 2:
            raise UnsupportedLayerError(f"layer {layer.name!r}: a merge layer reads two or more tensors, "
                                        f"it reads {len(self.inputs)}")
        self._append(layer.with_(inputs=tuple(self.inputs)))
        self.open_linear = False

    def _append(self, layer: Layer) -> None:
        if layer.name in self.shapes:
            # A Keras layer may be named as the graph input ("input") or as an IR layer made from
            # another Keras layer ("dense_relu"): the IR tensor gets a fresh name, as ONNX's does
            layer = layer.with_(name=self._unique(layer.name))
        self.shapes[layer.name] = tuple(layer.output_shape(*(self.shapes[s] for s in layer.inputs)))
        self.layers.append(layer)
        self.current = layer.name

    def _unique(self, name: str) -> str:
        suffix = 2
        while f"{name}_{suffix}" in self.shapes:
            suffix += 1
        return f"{name}_{suffix}"

    def normalize_pending(self) -> str:
        """The waiting norm made a layer on the current tensor; returns that layer's tensor."""
        tensor = self._normalize(self.pending_norm, self.current)
        self.pending_norm = None
        return tensor

    def _normalize(self, norm: tuple, tensor: str) -> str:
        """The IR tensor of ``norm`` applied to ``tensor`` (made once): a BatchNorm layer, its
        channels repeated when a Flatten came between."""
        key = (norm[0], tensor)
        if key not in self.normalized:
            _, scale, shift, ir_name = norm
            repeat = self.shapes[tensor][-1] // scale.size
            name = ir_name if ir_name not in self.shapes else f"{ir_name}_{len(self.normalized) + 1}"
            layer = BatchNorm(name, scale=np.tile(scale, repeat), bias=np.tile(shift, repeat), inputs=(tensor,))
            current = self.current
            self._append(layer)  # which may rename it (a Keras layer named as the input)
            self.current = current
            self.normalized[key] = self.layers[-1].name
        return self.normalized[key]

    def _fold_into_next(self, dense: Dense) -> Dense:
        _, scale, shift, _ = self.pending_norm
        self.pending_norm = None
        # The norm acted per channel (last axis); a Flatten in between repeats it per position.
        repeat = dense.in_features // scale.size
        scale, shift = np.tile(scale, repeat), np.tile(shift, repeat)
        return dense.with_(weight=dense.weight * scale[None, :], bias=dense.bias + dense.weight @ shift)

    def fold_norm(self, name: str, scale: np.ndarray, shift: np.ndarray, ir_name: str = "") -> None:
        channels = self.shape[-1]
        if scale.shape != (channels,):
            raise WeightError(f"layer {name!r} (BatchNormalization): {scale.size} channels, its input has {channels}")
        if self.open_linear and self.pending_norm is None and self._layer(self.current).weight_t is None:
            index = next(i for i, l in enumerate(self.layers) if l.name == self.current)
            last = self.layers[index]
            axes = (slice(None),) + (None,) * (last.weight.ndim - 1)
            self.layers[index] = last.with_(weight=last.weight * scale[axes], bias=last.bias * scale + shift)
            return
        if self.pending_norm is not None:  # two norms in a row: one affine map
            first, s0, h0, first_ir = self.pending_norm
            self.pending_norm = (first, s0 * scale, h0 * scale + shift, first_ir)
            return
        self.pending_norm = (name, scale, shift, ir_name or name)

    def _layer(self, name: str) -> Layer:
        return next(l for l in self.layers if l.name == name)

    # -- the whole model ---------------------------------------------------------------------------
    def graph(self, name: str, where: str, outputs: tuple[str, ...] = ()) -> Graph:
        """The graph whose outputs are those of the Keras layers ``outputs`` (default: the last one)."""
        for keras_name in outputs or (self.last,):
            if keras_name in self.norms:  # a final norm: a layer of its own
                self.tensors[keras_name] = self._normalize(self.norms[keras_name], self.tensors[keras_name])
                if keras_name == self.last:
                    self.current = self.tensors[keras_name]
        if not self.layers:
            raise ModelError(f"{where}: the model has no layers hwprune computes")
        missing = [o for o in outputs if o not in self.tensors]
        if missing:
            raise ModelError(f"{where}: the model's outputs {missing} are not layers of it")
        names = tuple(dict.fromkeys(self.tensors[o] for o in outputs)) if outputs else (self.current,)
        if INPUT in names:
            raise ModelError(f"{where}: a model output is its input; hwprune needs a layer that computes it")
        return Graph(name, (GraphInput(INPUT, self.input_shape),), tuple(self.layers), names)
