"""Pruning masks on torch modules: a pruned network is ``f(x, M * W)``.

A mask is a ``torch.nn.utils.parametrize`` parametrization of a module's ``weight``:
the module keeps the original (unmasked) tensor in ``parametrizations.weight.original``
and every read of ``module.weight`` returns ``original * mask``. Because the mask is
applied on the forward pass rather than written into the weights once, the effective
weight stays exactly zero where the mask is zero whatever an optimizer does to the
original (momentum, Adam's running moments and weight decay included), and the gradient
the original receives at a pruned position is zero.

The original weights are kept (not zeroed) so that lottery-ticket rewinding can read and
reset them; ``strip_masks`` bakes ``original * mask`` into a plain parameter at the end,
like ``squash_mask`` in torch.ao.pruning or ``strip_pruning`` in tfmot.

Prunable modules are ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` (and subclasses,
so quantization-aware layers that derive from them take masks too).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from hwprune.errors import OptionError, ShapeError, WeightError

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


class WeightMask(nn.Module):
    """The parametrization ``weight = original * mask``; the mask is a buffer (saved
    in the state dict, moved by ``.to()``, never trained)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return original * self.mask


def _check_exclude(model: nn.Module, exclude: Iterable[str]) -> set[str]:
    exclude = {exclude} if isinstance(exclude, str) else set(exclude)
    names = {name for name, module in model.named_modules() if isinstance(module, PRUNABLE_TYPES)}
    unknown = sorted(exclude - names)
    if unknown:
        raise OptionError(
            f"exclude names {unknown} are not prunable modules of the model; prunable modules are {sorted(names)}"
        )
    return exclude


def prunable_modules(model: nn.Module, exclude: Iterable[str] = ()) -> dict[str, nn.Module]:
    """Qualified name -> module for every Linear/Conv1d/Conv2d, in model order."""
    skip = _check_exclude(model, exclude)
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, PRUNABLE_TYPES) and name not in skip
    }


def _mask_of(module: nn.Module) -> WeightMask | None:
    if not parametrize.is_parametrized(module, "weight"):
        return None
    for p in module.parametrizations.weight:
        if isinstance(p, WeightMask):
            return p
    return None


def _lookup(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Module]:
    modules = prunable_modules(model)
    unknown = [name for name in names if name not in modules]
    if unknown:
        raise OptionError(f"masks name {unknown}, which are not prunable modules of the model; "
                          f"prunable modules are {list(modules)}")
    return modules


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Attach (or replace) the mask of each named module's weight, in place.

    A mask is a bool or 0/1 tensor of the weight's shape; a module that has a mask
    already gets the new one (it does not combine with the old: ``compute_masks`` keeps
    pruned weights pruned itself).
    """
    modules = _lookup(model, masks)
    for name, mask in masks.items():
        module = modules[name]
        mask = torch.as_tensor(mask)
        weight = module.weight
        if tuple(mask.shape) != tuple(weight.shape):
            raise ShapeError(f"mask for {name!r} has shape {tuple(mask.shape)}; its weight has shape {tuple(weight.shape)}")
        if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
            raise OptionError(f"mask for {name!r} must hold only 0 and 1 (or be a bool tensor)")
        # Zeros and ones in the weight's dtype: original * 1 is the original exactly.
        values = mask.detach().to(device=weight.device, dtype=weight.dtype).clone()
        existing = _mask_of(module)
        if existing is not None:
            existing.mask = values
        else:
            parametrize.register_parametrization(module, "weight", WeightMask(values))


def module_mask(module: nn.Module) -> torch.Tensor | None:
    """The mask on one module's weight (a bool copy), or None when it has none."""
    p = _mask_of(module)
    return None if p is None else p.mask.detach() != 0


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Name -> current mask (a bool tensor, a copy) for every module that has one."""
    masks = {name: module_mask(module) for name, module in prunable_modules(model).items()}
    return {name: mask for name, mask in masks.items() if mask is not None}


def strip_masks(model: nn.Module) -> nn.Module:
    """Bake every mask into its weight and remove the parametrizations; returns ``model``.

    Afterwards ``module.weight`` is a plain ``nn.Parameter`` holding exactly
    ``original * mask`` and ``torch.save(model)`` writes a plain module.
    """
    for module in prunable_modules(model).values():
        if _mask_of(module) is not None:
            _own_class(module)
            # leave_parametrized=True stores the parametrized value, original * mask.
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


def _own_class(module: nn.Module) -> None:
    """Give a parametrized module a class of its own before its parametrization goes.

    ``copy.deepcopy`` of a parametrized module shares the generated ``ParametrizedX``
    class with the original, and removing a parametrization deletes the property from
    that class, which would break every copy (say a saved best checkpoint). A fresh
    class with the same contents and base keeps the removal local to this module.
    """
    cls = module.__class__
    namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(cls.__name__, cls.__bases__, namespace)


def _count(weight: torch.Tensor) -> tuple[int, int]:
    return int((weight == 0).sum()), weight.numel()


def sparsity(model: nn.Module, exclude: Iterable[str] = ()) -> tuple[float, dict[str, float]]:
    """Achieved sparsity: zeros of the effective weights / their count, overall and per module."""
    zeros = total = 0
    per_module = {}
    with torch.no_grad():
        for name, module in prunable_modules(model, exclude).items():
            z, n = _count(module.weight)
            zeros, total = zeros + z, total + n
            per_module[name] = z / n if n else 0.0
    return (zeros / total if total else 0.0), per_module


def original_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Name -> copy of the unmasked weight of every prunable module (the weight itself
    when the module has no mask): what lottery-ticket rewinding saves and restores."""
    out = {}
    for name, module in prunable_modules(model).items():
        if _mask_of(module) is not None:
            out[name] = module.parametrizations.weight.original.detach().clone()
        else:
            out[name] = module.weight.detach().clone()
    return out


def load_original_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Overwrite the unmasked weights of the named modules in place (masks are kept, so
    the effective weight becomes ``weights[name] * mask``)."""
    modules = _lookup(model, weights)
    with torch.no_grad():
        for name, value in weights.items():
            module = modules[name]
            target = module.parametrizations.weight.original if _mask_of(module) is not None else module.weight
            value = torch.as_tensor(value)
            if tuple(value.shape) != tuple(target.shape):
                raise ShapeError(f"weights for {name!r} have shape {tuple(value.shape)}; the module's weight has "
                                 f"shape {tuple(target.shape)}")
            if not bool(torch.isfinite(value).all()):
                raise WeightError(f"weights for {name!r} contain NaN or Inf")
            target.copy_(value)
