"""Which weights to prune: scores, scopes and exact counts -> masks.

``compute_masks`` returns masks for ``masks.apply_masks``; it never changes the model.

Counting rules (the achieved count is exact, so experiments compare like with like):

- unstructured, scope "layer": each layer prunes ``round(s * n)`` of its ``n`` weights;
- unstructured, scope "global": ``round(s * total)`` weights over all layers, the lowest
  scores under one threshold;
- structured ("neurons", "filters"): the unit is a whole output row / channel, so the
  counts are ``round(s * rows)`` per layer, or ``round(s * rows over all layers)`` for
  global scope (a row's score is then its norm divided by ``fan_in ** (1/norm)``, the
  mean-size norm, so that layers of different fan-in compare);
- "nm": in every group of ``m`` consecutive weights along the input dimension the ``n``
  largest survive; sparsity and scope are ignored.

Weights pruned already (mask 0) score ``-inf`` and stay pruned, so iterative rounds
compose; if a layer has more of them than the requested count, it keeps them all (the
count is then higher than requested: a mask never grows back here). Ties are broken by
position: of equal scores the weight with the lower flat index is pruned first.
``min_density`` keeps at least ``ceil(min_density * n)`` weights (rows) in every layer
(the largest ones) and prunes the rest of the count elsewhere: a remedy for layer
collapse under global scope.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from hwprune.errors import OptionError, WeightError
from hwprune.prune.masks import get_masks, prunable_modules

METHODS = ("magnitude", "random", "random_uniform", "neurons", "filters", "nm")
SCOPES = ("layer", "global")
CONV_TYPES = (nn.Conv1d, nn.Conv2d)


def _check_fraction(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise OptionError(f"{what} must be a number in [0, 1), got {value!r}")
    return float(value)


def _effective(module: nn.Module, name: str) -> torch.Tensor:
    w = module.weight.detach().double()
    if not bool(torch.isfinite(w).all()):
        raise WeightError(f"module {name!r}: weight contains NaN or Inf; cannot rank weights for pruning")
    return w


def _prune_lowest(scores: torch.Tensor, count: int, protected: torch.Tensor | None = None) -> torch.Tensor:
    """Keep-mask (bool, same shape) that prunes the ``count`` lowest scores and every
    ``-inf``; ``protected`` entries are never pruned. Stable sort: lower index first."""
    flat = scores.reshape(-1)
    if protected is not None:
        flat = torch.where(protected.reshape(-1), torch.full_like(flat, math.inf), flat)
    order = torch.argsort(flat, stable=True)
    count = max(count, int(torch.isneginf(flat).sum()))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[order[:count]] = False
    return keep.reshape(scores.shape)


def _protect_top(scores: torch.Tensor, min_keep: int) -> torch.Tensor:
    """The ``min_keep`` highest finite scores (ties: lower index first)."""
    flat = scores.reshape(-1)
    finite = ~torch.isneginf(flat)
    min_keep = min(min_keep, int(finite.sum()))
    order = torch.argsort(-flat, stable=True)
    protected = torch.zeros(flat.numel(), dtype=torch.bool)
    protected[order[:min_keep]] = True
    return protected.reshape(scores.shape)


def _select(scores: dict[str, torch.Tensor], fractions, scope: str, min_density: float) -> dict[str, torch.Tensor]:
    """Keep-masks over per-layer score tensors, with exact counts (see module doc)."""
    sizes = {name: s.numel() for name, s in scores.items()}
    protected = {name: _protect_top(s, math.ceil(min_density * sizes[name])) for name, s in scores.items()}
    if isinstance(fractions, dict) or scope == "layer":
        keep = {}
        for name, s in scores.items():
            fraction = fractions[name] if isinstance(fractions, dict) else fractions
            count = min(round(fraction * sizes[name]), sizes[name] - int(protected[name].sum()))
            keep[name] = _prune_lowest(s, count, protected[name])
        return keep
    total = sum(sizes.values())
    count = round(fractions * total)
    free = total - sum(int(p.sum()) for p in protected.values())
    if count > free:
        raise OptionError(
            f"sparsity {fractions} prunes {count} of {total}, but min_density {min_density} protects "
            f"{total - free}; lower min_density (it must stay below {1 - fractions:.4g}) or the sparsity"
        )
    names = list(scores)
    flat = torch.cat([torch.where(protected[n], math.inf, scores[n]).reshape(-1) for n in names])
    # One stable sort over the concatenation: ties go to the earlier layer, then lower index.
    keep_flat = _prune_lowest(flat, count)
    keep, start = {}, 0
    for n in names:
        keep[n] = keep_flat[start:start + sizes[n]].reshape(scores[n].shape)
        start += sizes[n]
    return keep


def _unstructured_scores(modules, old: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    scores = {}
    for name, module in modules.items():
        s = _effective(module, name).abs()
        if name in old:
            s = torch.where(old[name], s, -math.inf)
        scores[name] = s
    return scores


def _random_scores(modules, old, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    scores = {}
    for name, module in modules.items():
        s = torch.rand(module.weight.shape, generator=generator, dtype=torch.float64)
        if name in old:
            s = torch.where(old[name], s, -math.inf)
        scores[name] = s
    return scores


def _row_scores(modules, old, norm: int, scale: bool) -> dict[str, torch.Tensor]:
    """One score per output unit: the norm of its row (its filter for a Conv)."""
    scores = {}
    for name, module in modules.items():
        rows = _effective(module, name).reshape(module.weight.shape[0], -1)
        s = rows.abs().sum(dim=1) if norm == 1 else rows.pow(2).sum(dim=1).sqrt()
        if scale:
            s = s / rows.shape[1] ** (1.0 / norm)
        if name in old:
            dead = ~old[name].reshape(rows.shape[0], -1).any(dim=1)
            s = torch.where(dead, -math.inf, s)
        scores[name] = s
    return scores


def _nm_masks(modules, old, n: int, m: int) -> dict[str, torch.Tensor]:
    masks = {}
    for name, module in modules.items():
        w = _effective(module, name).abs()
        if name in old:
            w = torch.where(old[name], w, -math.inf)
        # Input dimension last (channels-last for a Conv: groups run along input channels).
        rows = w.movedim(1, -1) if w.dim() > 2 else w
        shape = rows.shape
        rows = rows.reshape(-1, shape[-1])
        keep = torch.zeros_like(rows, dtype=torch.bool)
        for start in range(0, shape[-1], m):
            group = rows[:, start:start + m]
            # Stable descending order: of equal magnitudes the lower index survives.
            order = torch.argsort(-group, dim=1, stable=True)[:, :n]
            chosen = torch.zeros_like(group, dtype=torch.bool).scatter_(1, order, True)
            keep[:, start:start + m] = chosen & ~torch.isneginf(group)
        keep = keep.reshape(shape)
        masks[name] = keep.movedim(-1, 1) if w.dim() > 2 else keep
    return masks


def compute_masks(
    model: nn.Module,
    sparsity,
    method: str = "magnitude",
    scope: str = "layer",
    exclude: Iterable[str] = (),
    seed: int = 0,
    n: int = 2,
    m: int = 4,
    norm: int = 1,
    min_density: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Name -> bool keep-mask for the prunable modules of ``model`` (see the module doc).

    ``sparsity`` is a fraction in [0, 1) or a dict name -> fraction (explicit per-layer
    targets; ``scope`` is then ignored and unnamed modules get no mask). Structured
    methods never remove the output units of the model's last prunable module (those
    are the model's outputs); "neurons" ranks Linear modules, "filters" Conv modules,
    and only those get masks.
    """
    if method not in METHODS:
        raise OptionError(f"unknown pruning method {method!r}; choose one of {', '.join(METHODS)}")
    if scope not in SCOPES:
        raise OptionError(f"unknown pruning scope {scope!r}; choose one of {', '.join(SCOPES)}")
    if norm not in (1, 2):
        raise OptionError(f"norm must be 1 (L1) or 2 (L2), got {norm!r}")
    if isinstance(min_density, bool) or not isinstance(min_density, (int, float)) or not 0 <= min_density <= 1:
        raise OptionError(f"min_density must be a number in [0, 1], got {min_density!r}")
    everything = prunable_modules(model)
    modules = prunable_modules(model, exclude)
    if isinstance(sparsity, dict):
        unknown = sorted(set(sparsity) - set(modules))
        if unknown:
            raise OptionError(f"sparsity names {unknown}, which are not prunable (or are excluded); "
                              f"prunable modules are {list(modules)}")
        fractions = {k: _check_fraction(v, f"sparsity of {k!r}") for k, v in sparsity.items()}
        modules = {k: v for k, v in modules.items() if k in fractions}
    elif method != "nm":
        fractions = _check_fraction(sparsity, "sparsity")
    old = get_masks(model)

    if method == "nm":
        if not (isinstance(n, int) and isinstance(m, int) and 0 < n <= m):
            raise OptionError(f"N:M pruning needs integers 0 < n <= m, got n={n!r}, m={m!r}")
        return _nm_masks(modules, old, n, m)

    if method in ("neurons", "filters"):
        last = list(everything)[-1] if everything else None
        wanted = nn.Linear if method == "neurons" else CONV_TYPES
        modules = {k: v for k, v in modules.items() if isinstance(v, wanted) and k != last}
        if isinstance(fractions, dict):
            wrong = sorted(set(fractions) - set(modules))
            if wrong:
                raise OptionError(
                    f"method {method!r} prunes whole output units of {'Linear' if method == 'neurons' else 'Conv'} "
                    f"modules other than the model's last one; it cannot prune {wrong}")
        scores = _row_scores(modules, old, norm, scale=scope == "global" and not isinstance(fractions, dict))
        rows_keep = _select(scores, fractions, scope, min_density)
        masks = {}
        for name, keep in rows_keep.items():
            shape = modules[name].weight.shape
            mask = keep.reshape(-1, *([1] * (len(shape) - 1))).expand(shape).clone()
            masks[name] = mask & old[name] if name in old else mask
        return masks

    if method == "random_uniform":
        scores = _random_scores(modules, old, seed)
        return _select(scores, fractions, "layer", min_density)

    magnitude = _select(_unstructured_scores(modules, old), fractions, scope, min_density)
    if method == "magnitude":
        return magnitude
    # "random": the per-layer counts of the magnitude mask, drawn at random.
    scores = _random_scores(modules, old, seed)
    counts = {name: int((~keep).sum()) for name, keep in magnitude.items()}
    return {name: _prune_lowest(s, counts[name]) for name, s in scores.items()}
