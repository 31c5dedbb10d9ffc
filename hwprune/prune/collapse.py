"""Layer collapse: find layers, units and output classes that pruning cut off.

Under a global threshold a layer whose weights are small overall (often a wide middle
layer) can lose nearly all of them; past that point whole units carry no signal and
output classes end up computing a constant (their bias). Tanaka et al. (2020) call this
layer collapse. ``check_collapse`` finds it from the masks (or the zeros of the
effective weights) alone, before any accuracy is measured.

Connectivity is followed through the chain of prunable modules in model order: a unit
is *dead* when every weight into it is zero, or when every nonzero weight into it comes
from a dead unit of the previous prunable module. Its output is then a constant, however
the input varies. Between a Conv and a following Linear the channel of each flattened
feature is taken from torch's (channels, positions) flatten order. Where consecutive
modules do not line up (a model that is not a chain), propagation restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hwprune.prune.masks import get_masks, prunable_modules

#: Density below which a layer is reported even when it is not empty.
LOW_DENSITY = 0.01


@dataclass(frozen=True)
class CollapseWarning:
    """One finding. ``kind`` is "empty_layer", "low_density", "dead_units" or
    "disconnected_outputs"; ``units`` are output indices of ``layer`` concerned."""

    layer: str
    kind: str
    density: float
    kept: int
    total: int
    units: tuple[int, ...]
    message: str

    def __str__(self) -> str:
        return self.message


STRUCTURED = ("neurons", "filters")


def worth_reporting(findings, method: str) -> tuple:
    """The findings a user of ``method`` needs to hear: structured methods make dead units on
    purpose (export removes them), so "dead_units" is only news for the other methods."""
    return tuple(f for f in findings if not (method in STRUCTURED and f.kind == "dead_units"))


def _suggest(density_floor: float) -> str:
    return (f"keep a floor per layer (hwprune prune --min-density {density_floor:g}; min_density= in Python) so "
            "every layer keeps some weights, use layer scope (--scope layer), or exclude the layer")


def _in_units(module: nn.Module, previous: nn.Module | None, prev_units: int | None) -> torch.Tensor | None:
    """For each input column of ``module``'s weight, the index of the previous module's
    unit that feeds it; None when the two do not line up."""
    if previous is None or prev_units is None:
        return None
    fan_in = module.weight.shape[1]
    if fan_in == prev_units:
        return torch.arange(fan_in)
    if isinstance(module, nn.Linear) and not isinstance(previous, nn.Linear) and fan_in % prev_units == 0:
        return torch.arange(fan_in) // (fan_in // prev_units)  # Conv -> Flatten -> Linear
    return None


def check_collapse(model: nn.Module, masks: dict[str, torch.Tensor] | None = None,
                   low_density: float = LOW_DENSITY) -> list[CollapseWarning]:
    """Warnings for collapsed layers, dead units and output classes cut off from the input.

    ``masks`` (name -> keep-mask) override the model's; modules not named use the masks
    attached to the model, or else the nonzero pattern of their weights.
    """
    modules = prunable_modules(model)
    attached = get_masks(model)
    warnings: list[CollapseWarning] = []
    floor = max(2 * low_density, 0.01)
    previous = prev_dead = None
    names = list(modules)
    for index, (name, module) in enumerate(modules.items()):
        if masks is not None and name in masks:
            keep = torch.as_tensor(masks[name]).detach() != 0
        elif name in attached:
            keep = attached[name]
        else:
            with torch.no_grad():
                keep = module.weight.detach() != 0
        total, kept = keep.numel(), int(keep.sum())
        density = kept / total if total else 0.0
        last = index == len(names) - 1
        if kept == 0:
            warnings.append(CollapseWarning(
                name, "empty_layer", 0.0, 0, total, tuple(range(keep.shape[0])),
                f"layer {name!r} has no weights left (0 of {total}): its outputs do not depend on the input; "
                + _suggest(floor)))
        elif density < low_density:
            warnings.append(CollapseWarning(
                name, "low_density", density, kept, total, (),
                f"layer {name!r} keeps {100 * density:.2f}% of its weights ({kept} of {total}), below "
                f"{100 * low_density:g}%: it is close to collapse; " + _suggest(floor)))

        rows = keep.reshape(keep.shape[0], -1)
        columns = _in_units(module, previous, None if prev_dead is None else prev_dead.numel())
        if columns is not None and bool(prev_dead.any()):
            live_inputs = ~prev_dead[columns]
            # A weight shape (out, in, *kernel): an input column spans its kernel taps.
            live = keep & live_inputs.reshape(1, -1, *([1] * (keep.dim() - 2)))
        else:
            live = keep
        dead = ~live.reshape(keep.shape[0], -1).any(dim=1)
        cut_off = dead & rows.any(dim=1)  # weights left, but only from dead units
        if kept and bool(dead.any()):
            units = tuple(int(i) for i in torch.nonzero(dead).reshape(-1))
            if last:
                detail = (f"{int((~rows.any(dim=1)).sum())} have no weights, {int(cut_off.sum())} only weights "
                          "from dead units")
                warnings.append(CollapseWarning(
                    name, "disconnected_outputs", density, kept, total, units,
                    f"output layer {name!r}: outputs {list(units)} are cut off from every input ({detail}); "
                    "they compute a constant, so those classes can never be told apart; " + _suggest(floor)))
            else:
                warnings.append(CollapseWarning(
                    name, "dead_units", density, kept, total, units,
                    f"layer {name!r}: {len(units)} of {keep.shape[0]} units receive no input "
                    f"({int(cut_off.sum())} of them only through dead units) and output a constant; "
                    "after structured pruning this is intended (export removes them), otherwise "
                    + _suggest(floor)))
        previous, prev_dead = module, dead
    return warnings
