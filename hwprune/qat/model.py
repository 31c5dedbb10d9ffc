"""Quantization-aware training whose forward pass is the fixed-point model, exactly.

``prepare_qat`` calibrates the model the way export does (``from_torch`` then
``calibrate``) and copies the chosen types onto the modules: the input is quantized to
``input_t``; every Linear quantizes its weights to ``weight_t`` and biases to ``bias_t``
(through ``FakeQuant``, which calls ``ir.fixed.quantize``: there is one numeric
model), sums in float64 and quantizes the sum to ``result_t``; every ReLU casts to its
``result_t``. The products and partial sums of values on these grids are exact in
float64 while the accumulator needs at most 53 bits (checked), so on the calibration
types the QAT forward equals ``reference.predict`` of the calibrated graph bit for bit.

Type policy: types stay FIXED after calibration (as in QKeras or hls4ml's fixed types);
weights that outgrow ``weight_t`` saturate. ``recalibrate_qat`` chooses them again from
the current weights, e.g. after a few epochs. The accumulator type is not fixed: it is
derived, as ``calibrate`` does, from the final weights when the graph is built.

Gradients use the straight-through estimator: they pass unchanged, except that under
SAT they are zero where the real value lies outside the type's range.

Masks compose: a masked weight is exactly zero, and zero is on every grid. At the end,
``qat_graph`` gives the quantized IR graph that computes exactly what the QAT model
computes (export it with ``ir.io.save_graph``), and ``convert_qat`` a plain float64
torch module with the weights and biases on their grids.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from hwprune.errors import ModelError, OptionError
from hwprune.frontends.torch import from_torch, sequential_leaves
from hwprune.ir.graph import Graph
from hwprune.ir.layers import ReLU, WeightedLayer
from hwprune.prune.masks import strip_masks
from hwprune.quant.calibrate import QuantConfig, accumulator_type, calibrate
from hwprune.ir.fixed import Fixed, quantize
from hwprune.qat.core import (  # noqa: F401 (API)
    EXACT_BITS, FakeQuant, FakeQuantize, QATLinear, QATReLU, QuantizedWeights, carry_over, fake_quant,
)
from hwprune.qat.graph import QATGraphTwin, convert_graph_qat, prepare_graph_qat, qat_graph_of
from hwprune.qat.spatial import (
    PAD_TYPES, POOL_TYPES, QATPool, _QATConv, plain_conv_class, qat_conv_class, rebuilt_conv,
)

INPUT_NAME = "input_quant"
# -- building and converting ------------------------------------------------------------
PASS_THROUGH = (nn.Flatten, nn.Identity, nn.Dropout, nn.Softmax, nn.LogSoftmax, *PAD_TYPES)
CONV_TYPES = (nn.Conv1d, nn.Conv2d)
QAT_TYPES = (QATLinear, _QATConv, QATReLU, QATPool)


def _leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return sequential_leaves(
        module, (nn.Linear, *CONV_TYPES, nn.ReLU, *POOL_TYPES, QATPool, *PASS_THROUGH, FakeQuantize),
        "QAT supports nn.Sequential models of Linear, Conv1d/2d, pooling, zero padding, ReLU, Flatten, Identity, "
        "Dropout and a final Softmax (fold BatchNorm first)")


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, child = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def _rebuilt_linear(old: nn.Linear, cls, dtype=None) -> nn.Linear:
    """A ``cls`` Linear with ``old``'s unmasked weights, bias and mask."""
    dtype = dtype or old.weight.dtype
    new = cls(old.in_features, old.out_features, bias=old.bias is not None, dtype=dtype)
    return carry_over(old, new, dtype)


def _float_view(model: nn.Module) -> nn.Sequential:
    """A plain float copy (latent weights, masks baked in) for the frontend."""
    plain = copy.deepcopy(model)
    if isinstance(plain, nn.Sequential) and INPUT_NAME in plain._modules:
        del plain._modules[INPUT_NAME]
    for path, leaf in _leaves(plain):
        if isinstance(leaf, QATLinear):
            _replace(plain, path, _rebuilt_linear(leaf, nn.Linear))
        elif isinstance(leaf, _QATConv):
            _replace(plain, path, rebuilt_conv(leaf, plain_conv_class(leaf)))
        elif isinstance(leaf, QATReLU):
            _replace(plain, path, nn.ReLU())
        elif isinstance(leaf, QATPool):
            _replace(plain, path, copy.deepcopy(leaf.pool))
    return strip_masks(plain)


def _as_array(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def _assign_types(model: nn.Sequential, graph: Graph) -> None:
    """Copy the types of a calibrated ``graph`` onto the QAT modules, in chain order."""
    layers = [layer for layer in graph.layers if layer.computes]
    modules = [(p, m) for p, m in _leaves(model) if isinstance(m, QAT_TYPES)]
    if len(layers) != len(modules):
        raise ModelError(f"QAT model has {len(modules)} computing modules but its graph {len(layers)} layers")
    model._modules[INPUT_NAME].t = graph.input_t
    in_t = graph.input_t
    for layer, (path, module) in zip(layers, modules):
        weighted = isinstance(module, (QATLinear, _QATConv))
        if weighted != isinstance(layer, WeightedLayer) or isinstance(module, QATReLU) != isinstance(layer, ReLU):
            raise ModelError(f"module {path!r} does not match graph layer {layer.name!r}")
        if weighted:
            module.set_types(in_t, layer.weight_t, layer.bias_t, layer.result_t)
        elif isinstance(module, QATPool):
            module.set_types(in_t, layer.accum_t, layer.result_t)
        else:
            module.result_t = layer.result_t
        in_t = layer.result_t


def recalibrate_qat(model: nn.Sequential, calibration_x, weight_bits: int, activation_bits: int) -> nn.Sequential:
    """Choose every type again from the current weights and ``calibration_x`` (in place)."""
    if isinstance(model, QATGraphTwin):
        return model.recalibrate(calibration_x, weight_bits, activation_bits)
    config = QuantConfig(weight_bits, activation_bits)
    x = _as_array(calibration_x)
    model._modules[INPUT_NAME].shape = x.shape[1:]
    graph = from_torch(_float_view(model), x.shape[1:])
    _assign_types(model, calibrate(graph, x, config))
    return model


def prepare_qat(model: nn.Module, weight_bits: int = 8, activation_bits: int = 8, calibration_x=None) -> nn.Sequential:
    """A QAT copy of ``model`` (an ``nn.Sequential``; masks are kept) with the types that
    ``calibrate(from_torch(model), calibration_x, QuantConfig(weight_bits, activation_bits))``
    chooses. Module names are kept; the input quantizer is added as ``input_quant``.

    Any other model (a module ``torch.fx`` traces, with residual adds or concatenations; a
    ``GraphTwin``; a float IR graph) gets a ``QATGraphTwin`` (``qat.graph``), which
    ``recalibrate_qat``, ``qat_graph`` and ``convert_qat`` take as well."""
    if not isinstance(model, nn.Sequential):
        return prepare_graph_qat(model, weight_bits, activation_bits, calibration_x)
    if calibration_x is None:
        raise OptionError("prepare_qat needs calibration inputs (calibration_x) to choose the fixed-point types")
    if not 2 <= weight_bits <= 8:
        raise OptionError(f"QAT supports 2- to 8-bit weights, got weight_bits={weight_bits!r}")
    QuantConfig(weight_bits, activation_bits)  # checks the widths before any work
    if INPUT_NAME in model._modules:
        raise ModelError("this model is prepared for QAT already; use recalibrate_qat to choose new types")
    qat = copy.deepcopy(model)
    for path, leaf in _leaves(qat):
        if isinstance(leaf, nn.Linear):
            _replace(qat, path, _rebuilt_linear(leaf, QATLinear))
        elif isinstance(leaf, CONV_TYPES):
            _replace(qat, path, rebuilt_conv(leaf, qat_conv_class(leaf)))
        elif isinstance(leaf, nn.ReLU):
            _replace(qat, path, QATReLU())
        elif isinstance(leaf, POOL_TYPES):
            _replace(qat, path, QATPool(leaf))
    qat = nn.Sequential(OrderedDict([(INPUT_NAME, FakeQuantize(Fixed(8, 1))), *qat.named_children()]))
    return recalibrate_qat(qat, calibration_x, weight_bits, activation_bits)


def qat_graph(model: nn.Sequential, name: str = "model") -> Graph:
    """The quantized IR graph that computes exactly what the QAT ``model`` computes."""
    if isinstance(model, QATGraphTwin):
        return qat_graph_of(model, name)
    # The frontend reads the quantized weights (on their grids, so its reordering of conv
    # and Flatten-Linear weights is exact); the types come from the modules.
    quant = model._modules[INPUT_NAME]
    graph = from_torch(convert_qat(model), quant.shape or None, name=name)
    modules = [m for _, m in _leaves(model) if isinstance(m, QAT_TYPES)]
    layers, index = [], 0
    for layer in graph.layers:
        if layer.computes:
            module = modules[index]
            index += 1
            if isinstance(layer, ReLU):
                layer = layer.with_(result_t=module.result_t)
            elif isinstance(layer, WeightedLayer):
                w_q, b_q = quantize(layer.weight, module.weight_t), quantize(layer.bias, module.bias_t)
                accum_t = accumulator_type(w_q.reshape(w_q.shape[0], -1), b_q, module.input_t, module.weight_t,
                                           module.bias_t, layer.name, max_width=EXACT_BITS)
                layer = layer.with_(weight_t=module.weight_t, bias_t=module.bias_t, accum_t=accum_t,
                                    result_t=module.result_t)
            else:
                layer = layer.with_(accum_t=module.accum_t, result_t=module.result_t)
        layers.append(layer)
    return graph.with_layers(layers, input_t=quant.t)


def convert_qat(model: nn.Sequential) -> nn.Sequential:
    """A plain float64 ``nn.Sequential``: masks baked in, weights and biases replaced by
    their quantized values (on their grids), quantizers removed; names kept. A
    ``QATGraphTwin`` gives a plain float64 ``GraphTwin``."""
    if isinstance(model, QATGraphTwin):
        return convert_graph_qat(model)
    plain = copy.deepcopy(model)
    del plain._modules[INPUT_NAME]
    for path, leaf in _leaves(plain):
        if isinstance(leaf, QATLinear):
            linear = nn.Linear(leaf.in_features, leaf.out_features, dtype=torch.float64)
            with torch.no_grad():
                linear.weight.copy_(leaf.quantized_weight())
                linear.bias.copy_(leaf.quantized_bias())
            _replace(plain, path, linear)
        elif isinstance(leaf, _QATConv):
            with torch.no_grad():
                weight, bias = leaf.quantized_weight(), leaf.quantized_bias()
            conv = rebuilt_conv(leaf, plain_conv_class(leaf), torch.float64)
            if parametrize.is_parametrized(conv, "weight"):
                parametrize.remove_parametrizations(conv, "weight", leave_parametrized=False)
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=torch.float64))
            with torch.no_grad():
                conv.weight.copy_(weight)
                conv.bias.copy_(bias)
            _replace(plain, path, conv)
        elif isinstance(leaf, QATReLU):
            _replace(plain, path, nn.ReLU())
        elif isinstance(leaf, QATPool):
            _replace(plain, path, copy.deepcopy(leaf.pool))
    return plain
