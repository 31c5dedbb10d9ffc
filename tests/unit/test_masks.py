"""Masks as parametrizations: zeros survive every optimizer, strip and save round-trip."""

import io

import pytest
import torch
from torch import nn

from hwprune.errors import OptionError, ShapeError
from hwprune.prune.masks import (
    apply_masks, get_masks, load_original_weights, original_weights, prunable_modules, sparsity, strip_masks,
)

torch.set_num_threads(1)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Flatten(),
        nn.Sequential(nn.Linear(48, 16), nn.ReLU()), nn.Linear(16, 5),
    )


def _random_masks(model, density=0.5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(m.weight.shape, generator=g) < density for name, m in prunable_modules(model).items()}


def test_prunable_modules_in_model_order_with_exclude():
    model = _model()
    assert list(prunable_modules(model)) == ["0", "3.0", "4"]
    assert list(prunable_modules(model, exclude=("4",))) == ["0", "3.0"]
    with pytest.raises(OptionError, match="not prunable"):
        prunable_modules(model, exclude=("fc9",))


def test_apply_masks_zeroes_effective_weight_and_keeps_original():
    model = _model()
    before = original_weights(model)
    masks = _random_masks(model)
    apply_masks(model, masks)
    for name, module in prunable_modules(model).items():
        assert torch.equal(module.weight, before[name] * masks[name])
        assert torch.equal(module.parametrizations.weight.original, before[name])
        assert torch.equal(get_masks(model)[name], masks[name])
        assert get_masks(model)[name].dtype == torch.bool


@pytest.mark.parametrize("make_optimizer", [
    lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.1),
    lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
])
def test_zeros_stay_zero_after_optimizer_steps(make_optimizer):
    model = _model()
    masks = _random_masks(model)
    apply_masks(model, masks)
    opt = make_optimizer(model.parameters())
    x, y = torch.randn(32, 2, 14), torch.randint(0, 5, (32,))
    start = original_weights(model)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        for module in prunable_modules(model).values():
            grad = module.parametrizations.weight.original.grad
            mask = module.parametrizations.weight[0].mask
            assert torch.all(grad[mask == 0] == 0)
        opt.step()
    for name, module in prunable_modules(model).items():
        assert torch.all(module.weight[~masks[name]] == 0), name
        # Training happened: surviving weights moved.
        assert not torch.equal(module.weight[masks[name]], start[name][masks[name]])


def test_replacing_a_mask_does_not_stack_parametrizations():
    model = _model()
    apply_masks(model, _random_masks(model, seed=1))
    new = _random_masks(model, seed=2)
    apply_masks(model, new)
    layer = model[4]
    assert len(layer.parametrizations.weight) == 1
    assert torch.equal(get_masks(model)["4"], new["4"])
    assert torch.equal(layer.weight, layer.parametrizations.weight.original * new["4"])


def test_apply_masks_rejects_bad_masks():
    model = _model()
    with pytest.raises(ShapeError, match="'4'"):
        apply_masks(model, {"4": torch.ones(3, 3)})
    with pytest.raises(OptionError, match="not prunable"):
        apply_masks(model, {"fc": torch.ones(5, 16)})
    with pytest.raises(OptionError, match="0 and 1"):
        apply_masks(model, {"4": torch.full((5, 16), 0.5)})


def test_strip_masks_bakes_and_round_trips_through_torch_save():
    model = _model()
    masks = _random_masks(model)
    apply_masks(model, masks)
    x = torch.randn(8, 2, 14)
    expected = model(x).detach()
    effective = {name: m.weight.detach().clone() for name, m in prunable_modules(model).items()}
    assert strip_masks(model) is model
    for name, module in prunable_modules(model).items():
        assert type(module.weight) is nn.Parameter
        assert not hasattr(module, "parametrizations")
        assert torch.equal(module.weight, effective[name])
    assert get_masks(model) == {}
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert set(loaded.state_dict()) == {"0.weight", "0.bias", "3.0.weight", "3.0.bias", "4.weight", "4.bias"}
    assert torch.equal(loaded(x), expected)


def test_masked_model_round_trips_through_state_dict():
    model = _model()
    apply_masks(model, _random_masks(model))
    other = _model(seed=5)
    apply_masks(other, {name: torch.ones_like(m, dtype=torch.bool) for name, m in _random_masks(other).items()})
    other.load_state_dict(model.state_dict())
    assert all(torch.equal(get_masks(other)[k], v) for k, v in get_masks(model).items())


def test_sparsity_counts_zeros_of_effective_weights():
    model = _model()
    masks = _random_masks(model, density=0.3)
    with torch.no_grad():
        model[4].bias.zero_()  # biases never count
    apply_masks(model, masks)
    overall, per = sparsity(model)
    zeros = {name: int((~m).sum()) for name, m in masks.items()}
    total = sum(m.numel() for m in masks.values())
    assert overall == pytest.approx(sum(zeros.values()) / total)
    for name, m in masks.items():
        assert per[name] == zeros[name] / m.numel()
    overall_ex, per_ex = sparsity(model, exclude=("0",))
    assert set(per_ex) == {"3.0", "4"}


def test_original_weights_rewind():
    model = _model()
    initial = original_weights(model)
    masks = _random_masks(model)
    apply_masks(model, masks)
    with torch.no_grad():
        for module in prunable_modules(model).values():
            module.parametrizations.weight.original.add_(1.0)
    load_original_weights(model, initial)
    for name, module in prunable_modules(model).items():
        assert torch.equal(module.weight, initial[name] * masks[name])
        assert torch.equal(get_masks(model)[name], masks[name])
    # Copies, not views.
    got = original_weights(model)
    got["4"].add_(5.0)
    assert torch.equal(original_weights(model)["4"], initial["4"])
    with pytest.raises(ShapeError):
        load_original_weights(model, {"4": torch.zeros(2, 2)})


def test_strip_masks_on_a_deep_copy_leaves_the_original_masked():
    import copy

    model = _model()
    masks = _random_masks(model)
    apply_masks(model, masks)
    snapshot = copy.deepcopy(model)
    strip_masks(snapshot)
    x = torch.randn(4, 2, 14)
    torch.testing.assert_close(snapshot(x), model(x), rtol=0, atol=0)
    assert torch.equal(get_masks(model)["4"], masks["4"])
    strip_masks(model)
    assert type(model[4]) is nn.Linear
