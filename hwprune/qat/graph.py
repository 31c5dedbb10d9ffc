"""Quantization-aware training of graphs with branches: the torch twin of the graph
(``frontends.torch_twin``) with the fixed-point modules of ``qat.model``.

``prepare_graph_qat`` reads a torch module that ``torch.fx`` traces (residual adds,
products, ``torch.cat``), a ``GraphTwin`` or a float IR graph, calibrates the graph as
export does and builds a ``QATGraphTwin``: the input is quantized to ``input_t``, Dense
and conv layers are ``QATLinear``/``QATConv*`` (weights on ``weight_t``, sums exact in
float64, cast to ``result_t``), ReLU casts, pooling runs the integer reference's kernel
(``QATPool``), and the twin's forward casts what it computes itself as the reference
does: ``Add`` and ``Multiply`` form the exact sum or product (float64 holds it: at most
53 bits, checked) and cast it once to ``result_t``; ``Concatenate`` casts each operand;
``Clip`` clamps at the bounds on its input's grid (``reference.merge.clip_bounds``), then
casts. The other elementwise kinds (Sigmoid, Tanh, SELU, LeakyReLU/PReLU, HardSigmoid and
a BatchNorm that could not be folded) compute in the forward pass what the integer
reference's kernel computes on the input's grid (its tables, slopes and per-channel
constants as calibration typed them), with the gradient of the float function (straight
through); their own constants (a PReLU's slopes, a BatchNorm's scale and bias) stay at
their trained values. So on the calibration types the forward pass equals
``reference.predict`` of ``qat_graph``'s graph bit for bit, as chain QAT does.

Masks carry over from a masked ``GraphTwin``; from any other source a weight that is
exactly zero (pruned) stays zero: it gets a mask. Types stay fixed after calibration
(``recalibrate`` chooses them again); gradients are straight through.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from hwprune.errors import ModelError, OptionError, UnsupportedLayerError
from hwprune.frontends.torch import from_torch
from hwprune.frontends.torch_twin import GraphTwin, _Step
from hwprune.ir.graph import Graph
from hwprune.prune.masks import apply_masks, module_mask, prunable_modules, strip_masks
from hwprune.quant.calibrate import QuantConfig, accumulator_type, calibrate
from hwprune.ir.fixed import Fixed, quantize
from hwprune.qat.core import EXACT_BITS, FakeQuantize, QATLinear, QATReLU, carry_over, fake_quant
from hwprune.qat.spatial import QATPool, _QATConv, qat_conv_class, rebuilt_conv
from hwprune.reference import KERNELS
from hwprune.reference.merge import add_grid, clip_bounds, product_bits

#: Elementwise kinds whose forward pass is the reference's kernel (see the module doc).
BY_KERNEL = ("sigmoid", "tanh", "selu", "leaky_relu", "hard_sigmoid", "batchnorm")
#: The kinds a QAT graph computes exactly (``Graph`` kinds outside it are refused).
KINDS = ("dense", "conv1d", "conv2d", "relu", "clip", "add", "multiply", "concatenate", "flatten", "reshape",
         "identity", "softmax", "maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d", "globalavgpool1d",
         "globalavgpool2d", *BY_KERNEL)


def _qat_module(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.Linear):
        return carry_over(module, QATLinear(module.in_features, module.out_features, dtype=torch.float64),
                          torch.float64)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return rebuilt_conv(module, qat_conv_class(module), torch.float64)
    if isinstance(module, nn.ReLU):
        return QATReLU()
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
                           nn.AdaptiveAvgPool2d)):
        return QATPool(module)
    return module  # Hardtanh (Clip) and padding: the twin casts a Clip itself


class QATGraphTwin(GraphTwin):
    """A graph's twin whose forward pass is the fixed-point model (see the module doc)."""

    def __init__(self, graph: Graph, masks: dict | None = None) -> None:
        for layer in graph.layers:
            if layer.kind not in KINDS:
                raise UnsupportedLayerError(f"layer {layer.name!r} ({layer.kind}): QAT computes {', '.join(KINDS)}")
        super().__init__(graph, torch.float64)
        if masks:
            apply_masks(self, masks)
        for name, attr in self.module_of.items():
            setattr(self, attr, _qat_module(getattr(self, attr)))
        for layer in graph.layers:
            if layer.kind in BY_KERNEL:  # their constants are the reference's, typed once by calibration
                self.layer_module(layer.name).requires_grad_(False)
        self.input_quant = FakeQuantize(Fixed(8, 1))
        self.types: dict[str, tuple] = {}  # layer -> types the twin applies itself (merges, Clip)
        self.by_kernel: dict[str, tuple] = {}  # layer -> (calibrated layer, input type) for BY_KERNEL

    def assign(self, quantized: Graph) -> None:
        """Copy the types of the calibrated ``quantized`` graph (same layer names) onto the modules."""
        self.input_quant.t = quantized.input_t
        for layer in quantized.layers:
            in_types = quantized.input_types(layer)
            module = self.layer_module(layer.name) if layer.name in self.module_of else None
            if isinstance(module, (QATLinear, _QATConv)):
                module.set_types(in_types[0], layer.weight_t, layer.bias_t, layer.result_t)
            elif isinstance(module, QATPool):
                module.set_types(in_types[0], layer.accum_t, layer.result_t)
            elif isinstance(module, QATReLU):
                module.result_t = layer.result_t
            elif layer.kind in ("add", "multiply", "concatenate", "clip"):
                self._check_exact(layer, in_types)
                self.types[layer.name] = (in_types, layer.result_t)
            elif layer.kind in BY_KERNEL:
                self.by_kernel[layer.name] = (layer, in_types[0])

    @staticmethod
    def _check_exact(layer, in_types) -> None:
        bits = add_grid(list(in_types))[1] if layer.kind == "add" else \
            product_bits(list(in_types)) if layer.kind == "multiply" else 0
        if bits > EXACT_BITS:
            raise OptionError(f"QAT layer {layer.name!r} ({layer.kind}): its exact result needs {bits} bits, beyond "
                              f"exact float64 sums ({EXACT_BITS}); use fewer activation bits")

    def forward(self, x: torch.Tensor):
        return super().forward(self.input_quant(x.double()))

    def _run(self, step: _Step, args: list) -> torch.Tensor:
        if step.kind == "clip":
            (in_t,), result_t = self.types[step.name]
            lo, hi = clip_bounds(self.graph.layer(step.name), in_t)
            scale = 2.0 ** -in_t.frac_bits
            return fake_quant(args[0].clamp(lo * scale, hi * scale), result_t)
        y = super()._run(step, args)
        if step.kind in ("add", "multiply", "concatenate"):
            y = fake_quant(y, self.types[step.name][1])
        elif step.kind in BY_KERNEL:
            y = self._by_kernel(step.name, args[0], y)
        return y

    def _by_kernel(self, name: str, x: torch.Tensor, y_float: torch.Tensor) -> torch.Tensor:
        """The reference kernel's value of layer ``name`` on ``x`` (on its input type's grid),
        with ``y_float``'s gradient: ``y_float - y_float.detach()`` is exactly zero."""
        layer, in_t = self.by_kernel[name]
        scaled = x.detach().cpu().double().numpy() * 2.0 ** in_t.frac_bits
        x_int = scaled.astype("int64")
        if not (x_int == scaled).all():
            raise RuntimeError(f"QAT layer {name!r}: its input is not on the grid of {in_t}")
        channels_first = x_int.ndim > 2  # the twin's layout; per-channel constants sit on the IR's last axis
        if channels_first:
            x_int = x_int.swapaxes(1, -1)
        y_int = KERNELS[layer.kind](layer, x_int, in_t)
        if channels_first:
            y_int = y_int.swapaxes(1, -1)
        exact = torch.tensor(y_int * 2.0 ** -layer.result_t.frac_bits, dtype=y_float.dtype, device=y_float.device)
        return exact + (y_float - y_float.detach())

    def float_graph(self) -> Graph:
        """The float graph of the latent weights (masks applied), what calibration reads."""
        plain = convert_graph_qat(self, quantized=False)
        return plain.to_graph()

    def recalibrate(self, calibration_x, weight_bits: int, activation_bits: int) -> "QATGraphTwin":
        """Choose every type again from the current weights and ``calibration_x`` (in place)."""
        self.assign(calibrate(self.float_graph(), _as_array(calibration_x), QuantConfig(weight_bits, activation_bits)))
        return self


def _as_array(x):
    import numpy as np

    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def _source_graph(model, input_shape) -> tuple[Graph, dict]:
    """The float graph of ``model`` and the masks to keep (see the module doc)."""
    if isinstance(model, Graph):
        graph, masks = model, {}
    elif isinstance(model, GraphTwin):
        masks = {name: mask for name, m in prunable_modules(model).items()
                 if (mask := module_mask(m)) is not None}
        graph = strip_masks(copy.deepcopy(model)).to_graph()
    elif isinstance(model, nn.Module):
        graph, masks = from_torch(model, input_shape), {}
    else:
        raise ModelError(f"QAT reads a torch module, a GraphTwin or an IR graph, got {type(model).__name__}")
    if graph.is_quantized:
        raise ModelError(f"model {graph.name!r} is quantized already; QAT starts from the float model")
    for name, module in prunable_modules(GraphTwin(graph)).items():
        if name not in masks and bool((module.weight == 0).any()):
            masks[name] = module.weight != 0
    return graph, masks


def prepare_graph_qat(model, weight_bits: int = 8, activation_bits: int = 8, calibration_x=None) -> QATGraphTwin:
    """A ``QATGraphTwin`` of ``model`` with the types ``calibrate`` chooses on ``calibration_x``
    (in the model's layout)."""
    if calibration_x is None:
        raise OptionError("prepare_qat needs calibration inputs (calibration_x) to choose the fixed-point types")
    if not 2 <= weight_bits <= 8:
        raise OptionError(f"QAT supports 2- to 8-bit weights, got weight_bits={weight_bits!r}")
    QuantConfig(weight_bits, activation_bits)  # checks the widths before any work
    x = _as_array(calibration_x)
    graph, masks = _source_graph(model, x.shape[1:])
    return QATGraphTwin(graph, masks).recalibrate(x, weight_bits, activation_bits)


def qat_graph_of(twin: QATGraphTwin, name: str | None = None) -> Graph:
    """The quantized IR graph computing exactly what ``twin`` computes."""
    plain = convert_graph_qat(twin).to_graph()
    layers = []
    for layer in plain.layers:
        module = twin.layer_module(layer.name) if layer.name in twin.module_of else None
        if isinstance(module, (QATLinear, _QATConv)):
            w_q, b_q = quantize(layer.weight, module.weight_t), quantize(layer.bias, module.bias_t)
            accum_t = accumulator_type(w_q.reshape(w_q.shape[0], -1), b_q, module.input_t, module.weight_t,
                                       module.bias_t, layer.name, max_width=EXACT_BITS)
            layer = layer.with_(weight_t=module.weight_t, bias_t=module.bias_t, accum_t=accum_t,
                                result_t=module.result_t)
        elif isinstance(module, QATPool):
            layer = layer.with_(accum_t=module.accum_t, result_t=module.result_t)
        elif isinstance(module, QATReLU):
            layer = layer.with_(result_t=module.result_t)
        elif layer.name in twin.types:
            layer = layer.with_(result_t=twin.types[layer.name][1])
        elif layer.name in twin.by_kernel:
            layer = twin.by_kernel[layer.name][0]  # its constants never trained: the calibrated layer
        layers.append(layer)
    graph = plain.with_layers(layers, input_t=twin.input_quant.t)
    return graph.replace(name=name) if name else graph


def convert_graph_qat(twin: QATGraphTwin, quantized: bool = True) -> GraphTwin:
    """A plain float64 ``GraphTwin``: masks baked in and (``quantized``) weights and biases
    on their grids."""
    plain = GraphTwin(twin.graph, torch.float64)
    with torch.no_grad():
        for name, attr in twin.module_of.items():
            module = getattr(twin, attr)
            if isinstance(module, (QATLinear, _QATConv)):
                target = getattr(plain, attr)
                weight = module.quantized_weight() if quantized else module.weight.detach()
                bias = module.quantized_bias() if quantized else (
                    module.bias.detach() if module.bias is not None else torch.zeros(module.weight.shape[0]))
                target.weight.copy_(weight)
                target.bias.copy_(bias.to(torch.float64))
    return plain
