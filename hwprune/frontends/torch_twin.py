"""An IR graph as a torch module (its twin), to train a graph with branches: ``to_torch``'s
answer for graphs that are not chains.

``GraphTwin`` holds one torch module per IR layer that has one (Dense, conv, pooling,
ReLU, Clip and the activations of ``torch_activations``), registered under the layer's
name, so ``prune.masks.prunable_modules`` names masks after the IR layers. Its ``forward``
walks the graph's layers in topological order, each reading its inputs by name; ``Add``,
``Multiply``, ``Concatenate``, ``Flatten``, ``Reshape`` and the Softmax marker are
computed there. Tensors are channels-first, as torch's convs want; a Flatten (and a
Reshape) works in the IR's channels-last order, so a Dense keeps the IR's column order
and no weight is permuted. A graph whose source is channels-last (Keras) takes its inputs
in that layout, as ``Graph.from_source`` does. The Softmax marker computes nothing (the
engines return logits), so training sees logits.

``to_graph`` writes the current weights (masks baked in) back into the graph it was made
from: the same layers, names and structure. In float64 the twin computes what
``quant.calibrate.float_forward`` computes, to rounding. A BatchNorm the frontends could
not fold (``ir.BatchNorm``) trains as a per-channel affine map (``ChannelAffine``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from hwprune.errors import UnsupportedLayerError
from hwprune.frontends import torch_activations, torch_spatial
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Clip, Dense, Layer, ReLU


class ChannelAffine(nn.Module):
    """``x * scale + bias`` per channel (axis 1): the IR's inference-time BatchNorm, trainable."""

    def __init__(self, scale, bias, dtype) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(np.asarray(scale), dtype=dtype))
        self.bias = nn.Parameter(torch.tensor(np.asarray(bias), dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, *([1] * (x.dim() - 2)))
        return x * self.scale.reshape(shape) + self.bias.reshape(shape)


@dataclass(frozen=True)
class _Step:
    """One layer of the walk: ``module`` (an attribute of the twin) or None when forward
    computes it; ``pad``: a padding module run before a conv."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    module: Optional[str] = None
    pad: Optional[str] = None


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(1, -1) if x.dim() > 2 else x


def _channels_first(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(-1, 1) if x.dim() > 2 else x


class GraphTwin(nn.Module):
    """The torch twin of a float IR graph (see the module doc)."""

    def __init__(self, graph: Graph, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if graph.is_quantized:
            raise UnsupportedLayerError(f"model {graph.name!r} is quantized; a torch twin is made of a float graph")
        self.graph = graph
        self.dtype = dtype
        self.module_of: dict[str, str] = {}  # layer name -> attribute
        self.steps: list[_Step] = []
        taken: set[str] = set()
        for layer in graph.layers:
            self.steps.append(self._step(graph, layer, taken))

    def _attribute(self, name: str, taken: set[str]) -> str:
        """A module attribute for layer ``name``: the name itself unless the twin has one so named."""
        attr = name
        while hasattr(self, attr) or attr in taken:
            attr = f"{attr}_layer"
        taken.add(attr)
        return attr

    def _step(self, graph: Graph, layer: Layer, taken: set[str]) -> _Step:
        dtype = self.dtype
        module, pad = None, None
        if isinstance(layer, Dense):
            module = nn.Linear(layer.in_features, layer.out_features, dtype=dtype)
            with torch.no_grad():
                module.weight.copy_(torch.tensor(layer.weight, dtype=dtype))
                module.bias.copy_(torch.tensor(layer.bias, dtype=dtype))
        elif layer.spatial:
            pairs = torch_spatial.to_torch_modules(layer, dtype, graph.input_shape_of_layer(layer)[-1])
            if len(pairs) == 2:
                pad = self._attribute(pairs[0][0], taken)
                self.add_module(pad, pairs[0][1])
            module = pairs[-1][1]
        elif isinstance(layer, ReLU):
            module = nn.ReLU()
        elif isinstance(layer, Clip):
            module = nn.Hardtanh(layer.min_value, layer.max_value)
        elif layer.kind == "batchnorm":
            module = ChannelAffine(layer.scale, layer.bias, dtype)
        elif layer.kind not in ("add", "multiply", "concatenate", "flatten", "reshape", "identity", "softmax"):
            module = torch_activations.to_torch_module(layer, {})
            if module is None:
                raise UnsupportedLayerError(f"layer {layer.name!r}: no torch module computes {layer.kind!r}; "
                                            "it cannot be trained")
            module = module.to(dtype)
        attr = None
        if module is not None:
            attr = self._attribute(layer.name, taken)
            self.add_module(attr, module)
            self.module_of[layer.name] = attr
        return _Step(layer.name, layer.kind, tuple(layer.inputs), attr, pad)

    def forward(self, x: torch.Tensor):
        x = x.to(self.dtype)
        if self.graph.input_layout == "channels_last":
            x = _channels_first(x)
        values = {self.graph.input.name: x}
        for step in self.steps:
            values[step.name] = self._run(step, [values[s] for s in step.inputs])
        outputs = [self._to_source(values[name]) for name in self.graph.outputs]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _to_source(self, y: torch.Tensor) -> torch.Tensor:
        return _channels_last(y) if self.graph.input_layout == "channels_last" else y

    def _run(self, step: _Step, args: list) -> torch.Tensor:
        kind = step.kind
        if kind in ("add", "multiply"):
            a, b = args
            if a.dim() != b.dim():  # the IR's trailing-axis broadcast, in its channels-last layout
                a, b = _channels_last(a), _channels_last(b)
                rank = max(a.dim(), b.dim())
                a, b = (t.reshape(t.shape[0], *([1] * (rank - t.dim())), *t.shape[1:]) for t in (a, b))
                return _channels_first(a + b if kind == "add" else a * b)
            return a + b if kind == "add" else a * b
        if kind == "concatenate":
            rank = args[0].dim() - 1
            axis = self.graph.layer(step.name).resolved_axis(rank)
            dim = 1 if rank == 1 or axis == rank - 1 else axis + 2  # IR channels-last axis -> torch dim
            return torch.cat(args, dim=dim)
        (x,) = args
        if kind == "flatten":
            return torch.flatten(_channels_last(x), 1)
        if kind == "reshape":
            shape = self.graph.layer(step.name).target_shape
            return _channels_first(_channels_last(x).reshape(x.shape[0], *shape))
        if kind in ("identity", "softmax"):
            return x
        if step.pad is not None:
            x = getattr(self, step.pad)(x)
        y = getattr(self, step.module)(x)
        return torch.flatten(y, 1) if kind.startswith("globalavgpool") else y

    def layer_module(self, layer_name: str) -> nn.Module:
        """The torch module computing IR layer ``layer_name``."""
        return getattr(self, self.module_of[layer_name])

    def to_graph(self) -> Graph:
        """The graph with this twin's weights (masks baked in), same names and structure."""
        layers = []
        for layer in self.graph.layers:
            attr = self.module_of.get(layer.name)
            module = getattr(self, attr) if attr is not None else None
            if layer.weighted:
                weight = module.weight.detach().cpu().double().numpy()
                bias = module.bias.detach().cpu().double().numpy() if module.bias is not None \
                    else np.zeros(weight.shape[0])
                if not isinstance(layer, Dense):
                    weight = np.moveaxis(weight, 1, -1)  # torch's (out, in, *k) to the IR's (out, *k, in)
                layer = layer.with_(weight=weight, bias=bias)
            elif isinstance(module, ChannelAffine):
                layer = layer.with_(scale=module.scale.detach().cpu().double().numpy(),
                                    bias=module.bias.detach().cpu().double().numpy())
            elif isinstance(module, nn.PReLU):
                layer = layer.with_(alpha=module.weight.detach().cpu().double().numpy().reshape(-1))
            layers.append(layer)
        return self.graph.with_layers(layers)
