"""Pruning criteria: exact counts, one global threshold, structure, and composition."""

import math

import pytest
import torch
from torch import nn

from hwprune.errors import OptionError
from hwprune.prune.criteria import compute_masks
from hwprune.prune.masks import apply_masks, prunable_modules

torch.set_num_threads(1)


def _mlp(sizes=(20, 33, 17, 5), seed=0, scales=None):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = nn.Linear(a, b)
        if scales:
            with torch.no_grad():
                layer.weight.mul_(scales[i])
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _pruned(mask):
    return int((~mask).sum())


@pytest.mark.parametrize("s", [0.0, 0.1, 0.37, 0.5, 0.9, 0.99])
def test_layer_scope_prunes_exactly_round_s_n_smallest(s):
    model = _mlp()
    masks = compute_masks(model, s)
    for name, module in prunable_modules(model).items():
        mask, w = masks[name], module.weight.detach().abs()
        assert mask.dtype == torch.bool and mask.shape == w.shape
        assert _pruned(mask) == round(s * w.numel())
        if 0 < _pruned(mask) < w.numel():
            assert w[~mask].max() <= w[mask].min()


@pytest.mark.parametrize("s", [0.2, 0.75, 0.98])
def test_global_scope_is_one_threshold_with_exact_total(s):
    model = _mlp(scales=[4.0, 1.0, 0.25])  # layers differ in scale so their shares differ
    masks = compute_masks(model, s, scope="global")
    modules = prunable_modules(model)
    total = sum(m.weight.numel() for m in modules.values())
    assert sum(_pruned(m) for m in masks.values()) == round(s * total)
    pruned = torch.cat([modules[n].weight.detach().abs()[~m] for n, m in masks.items()])
    kept = torch.cat([modules[n].weight.detach().abs()[m] for n, m in masks.items()])
    assert pruned.max() <= kept.min()
    shares = [_pruned(m) / m.numel() for m in masks.values()]
    assert shares[0] <= shares[1] <= shares[2] and shares[0] < shares[2]


def test_ties_are_broken_by_position_deterministically():
    layer = nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight.fill_(0.5)
    model = nn.Sequential(layer)
    mask = compute_masks(model, 0.5)["0"]
    assert mask.tolist() == [[False, False, False, False], [True, True, True, True]]
    assert torch.equal(compute_masks(model, 0.5)["0"], mask)


def test_iterative_rounds_keep_pruned_weights_pruned():
    model = _mlp()
    first = compute_masks(model, 0.5, scope="global")
    # Make some pruned originals large: the mask, not the size, must keep them pruned.
    with torch.no_grad():
        for name, module in prunable_modules(model).items():
            module.weight[~first[name]] = 100.0
    apply_masks(model, first)
    second = compute_masks(model, 0.8, scope="global")
    total = sum(m.numel() for m in first.values())
    assert sum(_pruned(m) for m in second.values()) == round(0.8 * total)
    for name in first:
        assert not torch.any(second[name] & ~first[name])
    # A lower target keeps every earlier prune (the count is then the earlier one).
    lower = compute_masks(model, 0.3)
    for name in first:
        assert torch.equal(lower[name], first[name])


def test_random_has_the_magnitude_counts_and_random_uniform_the_requested_ones():
    model = _mlp(scales=[4.0, 1.0, 0.25])
    magnitude = compute_masks(model, 0.7, scope="global")
    rand = compute_masks(model, 0.7, method="random", scope="global", seed=3)
    for name in magnitude:
        assert _pruned(rand[name]) == _pruned(magnitude[name])
    assert any(not torch.equal(rand[n], magnitude[n]) for n in magnitude)
    assert all(torch.equal(rand[n], compute_masks(model, 0.7, method="random", scope="global", seed=3)[n])
               for n in rand)
    assert any(not torch.equal(rand[n], compute_masks(model, 0.7, method="random", scope="global", seed=4)[n])
               for n in rand)
    uniform = compute_masks(model, 0.7, method="random_uniform", scope="global", seed=3)
    for name, mask in uniform.items():
        assert _pruned(mask) == round(0.7 * mask.numel())


def test_neurons_prunes_whole_rows_by_norm_and_spares_the_output_layer():
    model = _mlp((6, 4, 3))
    with torch.no_grad():
        # Row 0: one large weight (L1 4, L2 4); row 1: spread (L1 4.8, L2 ~1.96).
        model[0].weight.copy_(torch.tensor([
            [4.0, 0, 0, 0, 0, 0], [0.8] * 6, [5.0] * 6, [6.0] * 6,
        ]))
    l1 = compute_masks(model, 0.25, method="neurons", norm=1)
    l2 = compute_masks(model, 0.25, method="neurons", norm=2)
    assert set(l1) == {"0"}  # the last Linear produces the model's outputs
    assert l1["0"].all(dim=1).tolist() == [False, True, True, True]
    assert l2["0"].all(dim=1).tolist() == [True, False, True, True]
    for mask in (l1["0"], l2["0"]):
        assert torch.equal(mask.all(dim=1), mask.any(dim=1))  # whole rows


def test_filters_prunes_whole_conv_channels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 6, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(6, 2))
    masks = compute_masks(model, 0.5, method="filters", scope="global")
    assert set(masks) == {"0", "2"}
    assert sum(int((~m.flatten(1).any(dim=1)).sum()) for m in masks.values()) == 7  # round(0.5 * 14)
    for mask in masks.values():
        rows = mask.flatten(1)
        assert torch.equal(rows.all(dim=1), rows.any(dim=1))


def test_nm_keeps_the_n_largest_of_every_m_along_inputs():
    model = _mlp((16, 8, 4))
    masks = compute_masks(model, 0.0, method="nm", n=2, m=4)
    for name, module in prunable_modules(model).items():
        w = module.weight.detach().abs()
        groups, keep = w.reshape(w.shape[0], -1, 4), masks[name].reshape(w.shape[0], -1, 4)
        assert torch.all(keep.sum(dim=2) == 2)
        assert torch.all(groups.masked_fill(~keep, math.inf).min(dim=2).values
                         >= groups.masked_fill(keep, -math.inf).max(dim=2).values)


def test_nm_on_conv_runs_along_input_channels():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv1d(8, 3, 2))
    mask = compute_masks(model, 0.0, method="nm", n=1, m=4)["0"]  # (3, 8, 2)
    assert torch.all(mask.reshape(3, 2, 4, 2).sum(dim=2) == 1)


def test_min_density_keeps_every_layer_alive_under_global_scope():
    model = _mlp((64, 128, 64, 10), scales=[1.0, 0.05, 1.0])
    plain = compute_masks(model, 0.98, scope="global")
    assert _pruned(plain["2"]) == plain["2"].numel()  # the small layer collapses entirely
    masks = compute_masks(model, 0.98, scope="global", min_density=0.01)
    total = sum(m.numel() for m in masks.values())
    assert sum(_pruned(m) for m in masks.values()) == round(0.98 * total)
    for mask in masks.values():
        assert int(mask.sum()) >= math.ceil(0.01 * mask.numel())
    with pytest.raises(OptionError, match="min_density"):
        compute_masks(model, 0.98, scope="global", min_density=0.5)


def test_explicit_per_layer_sparsity_and_exclude():
    model = _mlp()
    masks = compute_masks(model, {"0": 0.5, "4": 0.2}, scope="global")
    assert set(masks) == {"0", "4"}
    assert _pruned(masks["0"]) == round(0.5 * 20 * 33)
    assert _pruned(masks["4"]) == round(0.2 * 17 * 5)
    assert set(compute_masks(model, 0.5, exclude=("4",))) == {"0", "2"}


@pytest.mark.parametrize("kwargs, match", [
    (dict(sparsity=0.5, method="taylor"), "method"),
    (dict(sparsity=0.5, scope="network"), "scope"),
    (dict(sparsity=1.0), "sparsity"),
    (dict(sparsity=-0.1), "sparsity"),
    (dict(sparsity={"9": 0.5}), "not prunable"),
    (dict(sparsity=0.5, norm=3), "norm"),
    (dict(sparsity=0.5, method="nm", n=5, m=4), "n <= m"),
    (dict(sparsity={"4": 0.5}, method="neurons"), "cannot prune"),
])
def test_bad_options_raise_option_error(kwargs, match):
    with pytest.raises(OptionError, match=match):
        compute_masks(_mlp(), **kwargs)
