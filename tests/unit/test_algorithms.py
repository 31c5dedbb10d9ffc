import pytest
import torch

from hwprune.data import load_dataset
from hwprune.errors import OptionError
from hwprune.prune import algorithms, rewinding, schedules, sensitivity
from hwprune.prune.masks import apply_masks, prunable_modules, sparsity
from hwprune.prune.train import evaluate, fit, make_mlp, steps_per_epoch

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::hwprune.prune.algorithms.LayerCollapseWarning")


@pytest.fixture(scope="module")
def data():
    d = load_dataset("digits", seed=0)
    return d.x_train[:320], d.y_train[:320]


@pytest.fixture(scope="module")
def trained(data):
    model = make_mlp((64, 32, 16, 10), seed=0)
    fit(model, *data, epochs=8, lr=3e-3)
    return model


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def _sizes(model):
    return {name: m.weight.numel() for name, m in prunable_modules(model).items()}


def test_oneshot_prunes_exact_counts_and_keeps_zeros_through_retraining(data, trained):
    before = _state(trained)
    result = algorithms.oneshot(trained, *data, sparsity=0.8, epochs=2, scope="layer")
    assert all(torch.equal(v, before[k]) for k, v in trained.state_dict().items())  # caller's model untouched
    for name, n in _sizes(trained).items():
        assert result.layers[name] == round(0.8 * n) / n
        assert torch.equal(prunable_modules(result.model)[name].weight == 0, ~result.masks[name])
    assert result.train_accuracy == evaluate(result.model, *data)
    assert [h["round"] for h in result.history] == [1] and result.algorithm == "oneshot"


def test_oneshot_global_scope_and_strip(data, trained):
    result = algorithms.oneshot(trained, *data, sparsity=0.9, scope="global", epochs=1, strip=True)
    total = sum(_sizes(trained).values())
    assert result.sparsity == round(0.9 * total) / total
    assert not any(hasattr(m, "parametrizations") for m in result.model.modules())
    assert sparsity(result.model)[0] == result.sparsity


def test_oneshot_with_random_method_and_zero_epochs(data, trained):
    result = algorithms.oneshot(trained, *data, sparsity=0.5, method="random", epochs=0)
    masked = algorithms.oneshot(trained, *data, sparsity=0.5, method="magnitude", epochs=0)
    assert result.layers == masked.layers  # same per-layer counts, different weights
    assert any(not torch.equal(result.masks[k], masked.masks[k]) for k in result.masks)


def test_iterative_follows_the_geometric_schedule_within_the_epoch_budget(data, trained):
    rounds_seen = []
    result = algorithms.iterative(trained, *data, sparsity=0.9, rounds=4, epochs=6, scope="global",
                                  on_round=lambda r, m: rounds_seen.append(r))
    assert rounds_seen == [1, 2, 3, 4]
    assert [h["target"] for h in result.history] == [schedules.iterative(r, 4, 0.9) for r in range(1, 5)]
    assert [h["epochs"] for h in result.history] == [1, 1, 2, 2]
    achieved = [h["sparsity"] for h in result.history]
    assert achieved == sorted(achieved) and result.sparsity == pytest.approx(0.9, abs=1e-3)


def test_gradual_masks_follow_polynomial_decay(data, trained):
    epochs, per_epoch = 4, steps_per_epoch(len(data[0]), 64)
    total = epochs * per_epoch
    result = algorithms.gradual(trained, *data, sparsity=0.9, epochs=epochs, end_fraction=0.5, frequency=2)
    steps = [h["step"] for h in result.history]
    assert steps[0] == 0 and all(s % 2 == 0 for s in steps) and steps[-1] == round(0.5 * total)
    for h in result.history:
        assert h["target"] == schedules.polynomial_decay(h["step"], 0.0, 0.9, 0, round(0.5 * total), 2)
    sizes = _sizes(trained)
    for name, n in sizes.items():
        assert result.layers[name] == round(0.9 * n) / n


def test_gradual_whose_end_is_past_training_still_reaches_the_target(data, trained):
    result = algorithms.gradual(trained, *data, sparsity=0.7, epochs=1, end_fraction=1.0, frequency=3)
    assert result.history[-1]["target"] == 0.7
    assert result.sparsity == pytest.approx(0.7, abs=1e-3)


def test_lottery_rewinding_to_init_equals_training_the_mask_from_init(data):
    init = make_mlp((64, 32, 16, 10), seed=1)
    seen = []
    ticket = rewinding.lottery(init, *data, sparsity=0.8, rounds=2, epochs=2, lr=3e-3,
                                on_round=lambda r, m: seen.append((r, sparsity(m)[0])))
    assert [h["round"] for h in ticket.history] == [0, 1, 2]
    assert seen == [(h["round"], h["sparsity"]) for h in ticket.history]
    again = rewinding.train_with_mask(init, ticket.masks, *data, epochs=2, lr=3e-3)
    assert _same(ticket.model, again.model)


def test_lottery_rewinds_to_the_weights_after_k_steps(data):
    init = make_mlp((64, 32, 16, 10), seed=1)
    k = steps_per_epoch(len(data[0]), 64)  # one epoch: the first epoch of any run
    ticket = rewinding.lottery(init, *data, sparsity=0.6, rounds=1, epochs=3, rewind_iteration=k, lr=3e-3)
    early = make_mlp((64, 32, 16, 10), seed=1)
    fit(early, *data, epochs=1, lr=3e-3)
    apply_masks(early, ticket.masks)
    fit(early, *data, epochs=3, lr=3e-3, start_step=k)
    assert _same(ticket.model, early)


def test_lottery_reinit_control_keeps_the_mask_and_draws_new_weights(data):
    init = make_mlp((64, 32, 16, 10), seed=1)
    ticket = rewinding.lottery(init, *data, sparsity=0.8, rounds=2, epochs=2)
    control = rewinding.lottery(init, *data, sparsity=0.8, rounds=2, epochs=2, reinit=True, reinit_seed=5)
    assert control.algorithm == "lottery-reinit"
    assert all(torch.equal(ticket.masks[k], control.masks[k]) for k in ticket.masks)
    fresh = rewinding.reinitialized(init, 5)
    assert not _same(fresh, init) and _same(fresh, rewinding.reinitialized(init, 5))
    assert control.sparsity == ticket.sparsity


def test_lottery_rejects_a_rewind_point_past_the_run(data):
    with pytest.raises(OptionError, match="rewind iteration"):
        rewinding.lottery(make_mlp((64, 10)), *data, sparsity=0.5, epochs=1, rewind_iteration=5)


def test_lr_rewinding_one_round_from_step_zero_is_oneshot_retraining(data, trained):
    a = rewinding.lr_rewinding(trained, *data, sparsity=0.7, rounds=1, epochs=2, lr_schedule="cosine")
    b = algorithms.oneshot(trained, *data, sparsity=0.7, epochs=2, lr_schedule="cosine")
    assert _same(a.model, b.model)
    c = rewinding.lr_rewinding(trained, *data, sparsity=0.7, rounds=3, epochs=2, rewind_iteration=3)
    assert [h["round"] for h in c.history] == [1, 2, 3] and c.sparsity == pytest.approx(0.7, abs=1e-3)


def test_sensitivity_scan(data, trained):
    x_val, y_val = data
    table = sensitivity.sensitivity_scan(trained, *data, x_val, y_val, sparsities=[0.0, 0.95], layers=["0", "4"])
    assert set(table.accuracy) == {"0", "4"}
    assert table.accuracy["0"][0] == table.baseline == evaluate(trained, x_val, y_val)
    assert table.accuracy["0"][1] < table.baseline
    assert "| 0 |" in table.to_markdown()
    with pytest.raises(OptionError):
        sensitivity.sensitivity_scan(trained, *data, x_val, y_val, sparsities=[0.5], layers=["9"])


def test_layer_collapse_is_warned_and_returned(data, trained):
    shrunk = make_mlp((64, 32, 16, 10), seed=0)
    shrunk.load_state_dict(trained.state_dict())
    with torch.no_grad():
        shrunk[2].weight.mul_(1e-4)  # global magnitude ranking then empties this layer
    with pytest.warns(algorithms.LayerCollapseWarning, match="'2'"):
        result = algorithms.oneshot(shrunk, *data, sparsity=0.5, scope="global", epochs=0)
    assert result.layers["2"] == 1.0
    assert any(w.layer == "2" for w in result.warnings)


def test_bad_options(data, trained):
    with pytest.raises(OptionError, match="sparsity"):
        algorithms.oneshot(trained, *data, sparsity=1.0)
    with pytest.raises(OptionError, match="rounds"):
        algorithms.iterative(trained, *data, sparsity=0.5, rounds=0)
    with pytest.raises(OptionError, match="training option"):
        algorithms.oneshot(trained, *data, sparsity=0.5, learning_rate=0.1)
