"""torch activations -> IR activation layers, and back (``frontends.torch`` calls both).

``nn.Sigmoid``, ``nn.Tanh``, ``nn.SELU``, ``nn.LeakyReLU``, ``nn.PReLU`` (one slope, or one per channel:
torch's channel axis 1 is the IR's last axis), ``nn.Hardsigmoid`` (``relu6(x + 3) / 6``:
slope 1/6, shift 1/2) and ``nn.SiLU`` (swish, ``x * sigmoid(x)``: a Sigmoid and a Multiply,
the graph's one branch); in a traced ``forward`` also ``torch.sigmoid``/``torch.tanh`` (and
their ``torch.nn.functional`` and method spellings), mapped to the modules.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hwprune.errors import UnsupportedLayerError, WeightError
from hwprune.ir.activations import HardSigmoid, LeakyReLU, Selu, Sigmoid, Tanh
from hwprune.ir.base import Layer
from hwprune.ir.merge import Multiply

#: torch.nn class name -> the name prefix of the IR layer made from it
MODULES = {"Sigmoid": "sigmoid", "Tanh": "tanh", "SELU": "selu", "LeakyReLU": "leaky_relu", "PReLU": "prelu",
           "Hardsigmoid": "hard_sigmoid", "SiLU": "silu"}
METHODS = {"sigmoid": "Sigmoid", "tanh": "Tanh"}


def _torch():
    import torch

    return torch


@lru_cache(maxsize=1)
def hard_sigmoid_module():
    """``clip(slope * x + shift, 0, 1)`` with any slope and shift (ONNX's HardSigmoid; torch's
    own ``nn.Hardsigmoid`` fixes them at 1/6 and 1/2)."""
    nn = _torch().nn

    class HardSigmoidAffine(nn.Module):
        def __init__(self, slope: float, shift: float):
            super().__init__()
            self.slope, self.shift = float(slope), float(shift)

        def forward(self, x):
            return (x * self.slope + self.shift).clamp(0.0, 1.0)

    return HardSigmoidAffine


def module_types() -> tuple:
    nn = _torch().nn
    return (*(getattr(nn, name) for name in MODULES), hard_sigmoid_module())


def function_module(node):
    """The nn module a traced ``call_function``/``call_method`` node stands for, or None."""
    torch = _torch()
    F = torch.nn.functional
    functions = {torch.sigmoid: "Sigmoid", torch.tanh: "Tanh", F.sigmoid: "Sigmoid", F.tanh: "Tanh",
                 F.hardsigmoid: "Hardsigmoid", F.selu: "SELU", torch.selu: "SELU", F.silu: "SiLU"}
    if node.op == "call_function" and node.target in functions:
        return getattr(torch.nn, functions[node.target])()
    if node.op == "call_function" and node.target is F.leaky_relu:  # F.leaky_relu(x, negative_slope=0.01)
        slope = node.args[1] if len(node.args) > 1 else node.kwargs.get("negative_slope", 0.01)
        return torch.nn.LeakyReLU(float(slope)) if isinstance(slope, (int, float)) else None
    if node.op == "call_method" and node.target in METHODS:
        return getattr(torch.nn, METHODS[node.target])()
    return None


def names(module) -> list[tuple[str, str]]:
    """``(path suffix, name prefix)`` of each IR layer the module becomes (SiLU: two)."""
    prefix = MODULES.get(type(module).__name__, "hard_sigmoid")
    return [("_sigmoid", prefix), ("", prefix)] if prefix == "silu" else [("", prefix)]


def activation_layers(path: str, module, names: list[str], previous: str) -> list[Layer]:
    """The IR layers of ``module`` (names from ``names``), reading the tensor ``previous``.
    SiLU (swish) is ``x * sigmoid(x)``: a Sigmoid and a Multiply of its input by it."""
    if type(module).__name__ == "SiLU":
        sigmoid, silu = names
        return [Sigmoid(sigmoid, inputs=(previous,)), Multiply(silu, inputs=(previous, sigmoid))]
    return [_activation_layer(path, module, names[0])]


def _activation_layer(path: str, module, name: str) -> Layer:
    kind = type(module).__name__
    if kind == "Sigmoid":
        return Sigmoid(name)
    if kind == "Tanh":
        return Tanh(name)
    if kind == "SELU":
        return Selu(name)
    if kind == "Hardsigmoid":
        return HardSigmoid(name, slope=1.0 / 6.0, shift=0.5)
    if isinstance(module, hard_sigmoid_module()):
        return HardSigmoid(name, slope=module.slope, shift=module.shift)
    if kind == "LeakyReLU":
        return LeakyReLU(name, alpha=np.array([float(module.negative_slope)]))
    alpha = module.weight.detach().cpu().double().numpy().reshape(-1)
    if not np.all(np.isfinite(alpha)):
        raise WeightError(f"module {path!r} (PReLU): a slope is not finite")
    if alpha.size < 1:
        raise UnsupportedLayerError(f"module {path!r} (PReLU): it has no slopes")
    return LeakyReLU(name, alpha=alpha)


def swish_sigmoids(graph) -> dict[str, str]:
    """Sigmoid -> the Multiply that makes it a SiLU: ``Multiply(x, Sigmoid(x))``, the Sigmoid
    read by nothing else."""
    found = {}
    for layer in graph.layers:
        if isinstance(layer, Multiply) and len(layer.inputs) == 2:
            source, gate = layer.inputs
            producer = next((l for l in graph.layers if l.name == gate), None)
            if (isinstance(producer, Sigmoid) and producer.inputs == (source,)
                    and [c.name for c in graph.consumers(gate)] == [layer.name]):
                found[gate] = layer.name
    return found


def to_torch_module(layer: Layer, swish: dict[str, str]):
    """The float64 torch module computing ``layer`` (``swish``: ``swish_sigmoids``); None for
    a kind this module does not own."""
    torch = _torch()
    nn = torch.nn
    if isinstance(layer, Multiply) and layer.name in swish.values():
        return nn.SiLU()
    if isinstance(layer, Sigmoid):
        return nn.Sigmoid()
    if isinstance(layer, Tanh):
        return nn.Tanh()
    if isinstance(layer, Selu):
        return nn.SELU()
    if isinstance(layer, HardSigmoid):
        if layer.slope == 1.0 / 6.0 and layer.shift == 0.5:
            return nn.Hardsigmoid()
        return hard_sigmoid_module()(layer.slope, layer.shift)
    if isinstance(layer, LeakyReLU) and not layer.per_channel:
        return nn.LeakyReLU(float(layer.alpha[0]))
    if isinstance(layer, LeakyReLU):
        prelu = nn.PReLU(layer.alpha.size, dtype=torch.float64)
        with torch.no_grad():
            prelu.weight.copy_(torch.tensor(layer.alpha))
        return prelu
    return None
