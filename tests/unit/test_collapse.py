"""Layer collapse detection on constructed masks."""

import torch
from torch import nn

from hwprune.prune.collapse import check_collapse
from hwprune.prune.criteria import compute_masks
from hwprune.prune.masks import apply_masks


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def _collapsed_masks():
    """What 98 % global magnitude pruning does to a digits MLP: the middle layer keeps
    about 0.5 % of its weights, and most classes are left reading dead units."""
    masks = {
        "0": torch.rand(128, 64, generator=torch.Generator().manual_seed(1)) < 0.3,
        "2": torch.zeros(64, 128, dtype=torch.bool),
        "4": torch.zeros(10, 64, dtype=torch.bool),
    }
    masks["2"][:5, :8] = True  # 40 of 8192 weights: only units 0..4 are alive
    masks["4"][7:9, 0] = True  # classes 7 and 8 read a live unit
    masks["4"][0:7, 10:20] = True  # classes 0..6 read only dead units
    # class 9 has no weights at all
    return masks


def test_collapse_is_found_from_explicit_masks():
    warnings = check_collapse(_mlp(), _collapsed_masks())
    by_kind = {(w.layer, w.kind): w for w in warnings}
    assert set(by_kind) == {("2", "low_density"), ("2", "dead_units"), ("4", "disconnected_outputs")}
    low = by_kind["2", "low_density"]
    assert (low.kept, low.total) == (40, 8192) and abs(low.density - 40 / 8192) < 1e-12
    assert "min_density" in low.message
    assert by_kind["2", "dead_units"].units == tuple(range(5, 64))
    outputs = by_kind["4", "disconnected_outputs"]
    assert outputs.units == (0, 1, 2, 3, 4, 5, 6, 9)
    assert "min_density" in outputs.message and "[0, 1, 2, 3, 4, 5, 6, 9]" in str(outputs)


def test_collapse_is_found_from_attached_masks_and_from_zero_weights():
    model = _mlp()
    apply_masks(model, _collapsed_masks())
    kinds = {(w.layer, w.kind) for w in check_collapse(model)}
    assert ("4", "disconnected_outputs") in kinds
    plain = _mlp()
    with torch.no_grad():
        for name, mask in _collapsed_masks().items():
            plain.get_submodule(name).weight.mul_(mask)
    assert {(w.layer, w.kind) for w in check_collapse(plain)} == kinds


def test_empty_layer_is_reported():
    masks = {name: torch.ones_like(m) for name, m in _collapsed_masks().items()}
    masks["2"] = torch.zeros(64, 128, dtype=torch.bool)
    warnings = check_collapse(_mlp(), masks)
    assert [(w.layer, w.kind) for w in warnings] == [("2", "empty_layer"), ("4", "disconnected_outputs")]
    assert warnings[1].units == tuple(range(10))


def test_healthy_pruning_gives_no_warnings():
    model = _mlp()
    assert check_collapse(model, compute_masks(model, 0.8, scope="global")) == []
    floored = check_collapse(model, compute_masks(model, 0.98, scope="global", min_density=0.01))
    assert not [w for w in floored if w.kind in ("empty_layer", "low_density")]


def test_dead_filters_propagate_through_flatten():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 4))
    masks = {"0": torch.ones(3, 2, 3, dtype=torch.bool), "3": torch.ones(4, 18, dtype=torch.bool)}
    masks["0"][1] = False  # filter 1 is dead: flattened features 6..11
    masks["3"][2] = False
    masks["3"][2, 6:12] = True  # output 2 reads only the dead filter
    warnings = check_collapse(model, masks)
    assert [(w.layer, w.kind, w.units) for w in warnings] == [
        ("0", "dead_units", (1,)), ("3", "disconnected_outputs", (2,)),
    ]
