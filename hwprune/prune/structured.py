"""Physically remove pruned units: a structured mask becomes a smaller dense model.

A unit (Linear output row, Conv output channel) can go when

- every weight into it is zero: it then outputs a constant, ``act(bias)`` (through any
  BatchNorm and activation before the next prunable module), which is folded into the
  next module's bias so that the function does not change; or
- every weight out of it (its column in the next module) is zero: nothing reads it.

Folding into a following Conv is exact only without padding (zero padding would mix the
constant with zeros at the borders), so a constant channel feeding a padded Conv stays
unless its constant is zero. Pooling between the two keeps a constant channel constant
(max, average without counted padding, adaptive average); an average that counts zero
padding, or a padding module, mixes zeros in, so there too only a zero constant folds. Removal repeats until nothing changes, so units that read
only removed units go too. The output units of the last prunable module are the model's
outputs and always stay; every layer keeps at least one unit.

The result computes the same function as the input in eval mode (BatchNorm running
statistics, Dropout off); it is a new module, the input is not changed.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from hwprune.errors import ShapeError, UnsupportedLayerError
from hwprune.frontends.torch import sequential_leaves
from hwprune.frontends.torch_activations import hard_sigmoid_module
from hwprune.prune.masks import PRUNABLE_TYPES, strip_masks

ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.Tanh, nn.Sigmoid, nn.ELU, nn.SELU, nn.GELU, nn.SiLU,
               nn.Hardsigmoid, hard_sigmoid_module(), nn.Identity, nn.Dropout)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
TAIL = (nn.Softmax, nn.LogSoftmax)
# Per-channel modules between two prunable ones: a unit's channel stays that channel.
POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
         nn.ZeroPad1d, nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d)


def _mixes_in_zeros(m: nn.Module) -> bool:
    """Whether ``m`` turns a constant channel into a non-constant one (zero padding)."""
    if isinstance(m, (nn.ZeroPad1d, nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d)):
        return True
    if isinstance(m, (nn.AvgPool1d, nn.AvgPool2d)):
        padding = m.padding if isinstance(m.padding, (tuple, list)) else (m.padding,)
        return bool(m.count_include_pad) and any(p != 0 for p in padding)
    return False


def _leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return sequential_leaves(
        module, hint="remove_pruned_neurons reads nn.Sequential models of Linear, Conv1d/Conv2d, BatchNorm, "
        "Flatten, Dropout, Identity and elementwise activations")


def _check_chain(chain: list[tuple[str, nn.Module]]) -> list[int]:
    prunable = [i for i, (_, m) in enumerate(chain) if isinstance(m, PRUNABLE_TYPES)]
    last = prunable[-1] if prunable else -1
    before = None  # the prunable module before the current one
    for i, (name, m) in enumerate(chain):
        if isinstance(m, POOLS) and isinstance(before, nn.Linear):
            raise UnsupportedLayerError(f"module {name!r} ({type(m).__name__}) pools the units of a Linear; "
                                        "remove_pruned_neurons supports pooling after a Conv1d/Conv2d only")
        if isinstance(m, PRUNABLE_TYPES):
            before = m
            if getattr(m, "groups", 1) != 1:
                raise UnsupportedLayerError(f"module {name!r}: grouped and depthwise convolutions (groups={m.groups}) "
                                            "are not supported by remove_pruned_neurons")
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise UnsupportedLayerError(f"module {name!r} (Flatten): only start_dim=1, end_dim=-1 is supported")
        elif isinstance(m, TAIL) and i > last:
            pass
        elif not isinstance(m, ELEMENTWISE + NORMS + POOLS):
            raise UnsupportedLayerError(
                f"module {name!r} ({type(m).__name__}) is not supported by remove_pruned_neurons; it reads Linear, "
                "Conv1d/Conv2d, BatchNorm, pooling, Flatten, Dropout, Identity and elementwise activations")
    return prunable


def _column_units(a: nn.Module, b: nn.Module, names: tuple[str, str]) -> torch.Tensor:
    """For each input column of ``b``, the output unit of ``a`` that feeds it."""
    units, fan_in = a.weight.shape[0], b.weight.shape[1]
    if fan_in == units:
        return torch.arange(fan_in)
    if isinstance(b, nn.Linear) and not isinstance(a, nn.Linear) and fan_in % units == 0:
        return torch.arange(fan_in) // (fan_in // units)  # torch flattens (channels, positions)
    raise ShapeError(f"modules {names[0]!r} ({units} outputs) and {names[1]!r} ({fan_in} inputs) do not line up")


def _constants(a: nn.Module, between: list[nn.Module]) -> torch.Tensor:
    """What each unit of ``a`` would output (after ``between``) if all its weights were zero."""
    units = a.weight.shape[0]
    bias = a.bias.detach().double() if a.bias is not None else torch.zeros(units, dtype=torch.float64)
    z = bias.reshape(1, units, *([1] * (a.weight.dim() - 2)))
    with torch.no_grad():
        for m in between:
            if not isinstance(m, (nn.Flatten, *POOLS)):  # pooling keeps a constant (see _mixes_in_zeros)
                z = copy.deepcopy(m).double().eval()(z)
    return z.reshape(units)


def _no_padding(conv: nn.Module) -> bool:
    if isinstance(conv.padding, str):
        return conv.padding == "valid" or all(k == 1 for k in conv.kernel_size)
    return all(p == 0 for p in conv.padding)


def _shrink_outputs(a: nn.Module, keep: torch.Tensor) -> None:
    a.weight = nn.Parameter(a.weight.detach()[keep].clone())
    if a.bias is not None:
        a.bias = nn.Parameter(a.bias.detach()[keep].clone())
    if isinstance(a, nn.Linear):
        a.out_features = int(keep.sum())
    else:
        a.out_channels = int(keep.sum())


def _shrink_norm(norm: nn.Module, keep: torch.Tensor) -> None:
    for key in ("weight", "bias"):
        if getattr(norm, key) is not None:
            setattr(norm, key, nn.Parameter(getattr(norm, key).detach()[keep].clone()))
    for key in ("running_mean", "running_var"):
        if getattr(norm, key) is not None:
            setattr(norm, key, getattr(norm, key)[keep].clone())
    norm.num_features = int(keep.sum())


def _shrink_inputs(b: nn.Module, keep_columns: torch.Tensor, fold: torch.Tensor) -> None:
    """Drop input columns of ``b`` and add ``fold`` (per output unit) to its bias."""
    if bool((fold != 0).any()):
        if b.bias is None:
            b.bias = nn.Parameter(torch.zeros(b.weight.shape[0], dtype=b.weight.dtype))
        with torch.no_grad():
            b.bias.copy_((b.bias.double() + fold).to(b.bias.dtype))
    b.weight = nn.Parameter(b.weight.detach()[:, keep_columns].clone())
    if isinstance(b, nn.Linear):
        b.in_features = int(keep_columns.sum())
    else:
        b.in_channels = int(keep_columns.sum())


def _remove_pair(chain, i: int, j: int) -> bool:
    """Remove dead or unread units of ``chain[i]`` (feeding ``chain[j]``); True if any went."""
    (name_a, a), (name_b, b) = chain[i], chain[j]
    between = [m for _, m in chain[i + 1:j]]
    columns = _column_units(a, b, (name_a, name_b))
    units = a.weight.shape[0]
    w_b = b.weight.detach().double().reshape(b.weight.shape[0], b.weight.shape[1], -1)
    read = torch.zeros(units, dtype=torch.bool)
    read[columns[(w_b != 0).any(dim=2).any(dim=0)]] = True
    no_input = ~(a.weight.detach() != 0).reshape(units, -1).any(dim=1)
    constants = _constants(a, between)
    foldable = (isinstance(b, nn.Linear) or _no_padding(b)) and not any(_mixes_in_zeros(m) for m in between)
    remove = (no_input & (foldable | (constants == 0))) | ~read
    if bool(remove.all()):
        remove[0] = False  # a layer with no units at all is of no use to any exporter
    if not bool(remove.any()):
        return False
    removed_columns = remove[columns]
    # Each removed unit's constant times the sum of its weights (all kernel taps: no padding).
    fold = (w_b[:, removed_columns, :].sum(dim=2) * constants[columns][removed_columns]).sum(dim=1)
    keep = ~remove
    _shrink_outputs(a, keep)
    for m in between:
        if isinstance(m, NORMS):
            _shrink_norm(m, keep)
    _shrink_inputs(b, ~removed_columns, fold)
    return True


def remove_pruned_neurons(model: nn.Module) -> nn.Module:
    """A smaller copy of ``model`` without its dead or unread units (see the module doc)."""
    if not isinstance(model, nn.Sequential):
        raise UnsupportedLayerError(
            f"remove_pruned_neurons needs an nn.Sequential model, got {type(model).__name__}")
    new = strip_masks(copy.deepcopy(model))
    chain = _leaves(new)
    prunable = _check_chain(chain)
    changed = True
    while changed:
        changed = False
        for i, j in zip(prunable[:-1], prunable[1:]):
            changed |= _remove_pair(chain, i, j)
    return new
