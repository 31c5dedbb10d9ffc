"""Learning-rate schedules, LR rewinding that replays them, and the reinit seed."""

import math

import numpy as np
import pytest
import torch

from hwprune.cli.prune import LR_SCHEDULES as CLI_SCHEDULES
from hwprune.data import load_dataset
from hwprune.errors import OptionError
from hwprune.prune import algorithms, lr, rewinding
from hwprune.prune.train import fit, make_mlp, steps_per_epoch

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::hwprune.prune.algorithms.LayerCollapseWarning")


@pytest.fixture(scope="module")
def data():
    d = load_dataset("digits", seed=0)
    return d.x_train[:192], d.y_train[:192]  # 3 steps of 64 per epoch


def test_named_schedules():
    assert lr.rates(0.5, "constant", 4) == [0.5] * 4
    assert lr.rates(1.0, "step", 8) == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    assert lr.factor("cosine", 0, 10) == 1.0 and lr.factor("cosine", 5, 10) == pytest.approx(0.5)
    assert CLI_SCHEDULES == lr.LR_SCHEDULES


def test_onecycle_matches_torch_onecyclelr():
    total = 40
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total, cycle_momentum=False)
    expected = []
    for _ in range(total):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lr.rates(0.1, "onecycle", total) == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert max(lr.rates(1.0, "onecycle", total)) == pytest.approx(1.0)


def test_warmup_ramps_any_schedule_linearly():
    assert lr.rates(1.0, "constant", 6, warmup=4) == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1])
    assert lr.factor("cosine", 1, 10, warmup=4) == pytest.approx(0.5 * lr.factor("cosine", 1, 10))
    assert lr.factor(lambda s, n: 2.0, 0, 3, warmup=2) == 1.0


@pytest.mark.parametrize("schedule, warmup, message", [
    ("linear", 0, "unknown learning-rate schedule 'linear'"), ("cosine", -1, "warm-up"), ("step", 1.5, "warm-up"),
])
def test_bad_schedule_options(data, schedule, warmup, message):
    with pytest.raises(OptionError, match=message):
        lr.factor(schedule, 0, 10, warmup)
    with pytest.raises(OptionError, match=message):
        fit(make_mlp((64, 10)), *data, epochs=1, lr_schedule=schedule, warmup=warmup)


def _record_rates(monkeypatch):
    """Every learning rate an Adam step uses, in order (read from the optimizer itself)."""
    seen = []
    original = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    return seen


@pytest.mark.parametrize("schedule", ["onecycle", "step"])
def test_lr_rewinding_replays_the_original_schedule_from_step_k(data, monkeypatch, schedule):
    epochs, k, base = 4, 5, 3e-3
    total = epochs * steps_per_epoch(len(data[0]), 64)
    seen = _record_rates(monkeypatch)
    result = rewinding.lottery(make_mlp((64, 16, 10), seed=2), *data, sparsity=0.75, rounds=2, epochs=epochs,
                                rewind_iteration=k, rewind="lr", lr=base, lr_schedule=schedule, warmup=2)
    original = seen[:total]
    assert original == pytest.approx(lr.rates(base, schedule, total, warmup=2), rel=1e-12)
    assert len(set(original)) > 2  # a schedule that changes, or there is nothing to rewind
    rounds = [seen[total:total + total - k], seen[2 * total - k:]]
    for replayed in rounds:
        assert len(replayed) == total - k
        assert replayed == original[k:]  # the same float at each step, not a re-derived one
    assert result.algorithm == "lottery-lr-rewinding"
    assert [h["round"] for h in result.history] == [0, 1, 2]


def test_lr_rewinding_keeps_the_trained_weights_and_weight_rewinding_does_not(data):
    init = make_mlp((64, 16, 10), seed=3)
    common = dict(sparsity=0.5, rounds=1, epochs=2, rewind_iteration=2, lr=3e-3, lr_schedule="cosine")
    by_lr = rewinding.lottery(init, *data, rewind="lr", **common)
    trained = make_mlp((64, 16, 10), seed=3)
    fit(trained, *data, epochs=2, lr=3e-3, lr_schedule="cosine")
    again = rewinding.lr_rewinding(trained, *data, **common)
    assert all(torch.equal(p, q) for p, q in zip(by_lr.model.parameters(), again.model.parameters()))
    by_weights = rewinding.lottery(init, *data, **common)
    assert not all(torch.equal(p, q) for p, q in zip(by_lr.model.parameters(), by_weights.model.parameters()))
    with pytest.raises(OptionError, match="rewind must be one of weights, lr"):
        rewinding.lottery(init, *data, rewind="both", **common)


def test_default_reinit_seed_cannot_be_another_seeds_init():
    derived = [rewinding.default_reinit_seed(s) for s in range(-3, 1000)]
    assert len(set(derived)) == len(derived)
    assert all(2**63 <= d < 2**64 for d in derived)  # above every seed a study uses
    assert rewinding.default_reinit_seed(7) == rewinding.default_reinit_seed(7)
    torch.manual_seed(derived[-1])  # torch accepts it
    init = make_mlp((4, 3), seed=1)
    fresh = rewinding.reinitialized(init, rewinding.default_reinit_seed(0))
    assert not torch.equal(fresh[0].weight, make_mlp((4, 3), seed=1)[0].weight)


def test_reinit_control_uses_the_derived_seed_by_default(data):
    init = make_mlp((64, 16, 10), seed=0)
    masks = algorithms.oneshot(init, *data, sparsity=0.5, epochs=0).masks
    a = rewinding.train_with_mask(init, masks, *data, epochs=1, reinit=True, seed=0)
    b = rewinding.train_with_mask(init, masks, *data, epochs=1, reinit=True, seed=0,
                                   reinit_seed=rewinding.default_reinit_seed(0))
    c = rewinding.train_with_mask(init, masks, *data, epochs=1, reinit=True, seed=0, reinit_seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.model.parameters(), c.model.parameters()))


def test_paired_refuses_unmatched_seeds():
    from benchmarks.experiments.common import paired

    p = paired({0: 0.9, 1: 0.8}, {0: 0.7, 1: 0.8})
    assert p["n"] == 2 and p["mean"] == pytest.approx(0.1) and (p["a_wins"], p["ties"]) == (1, 1)
    with pytest.raises(ValueError, match=r"only in a: \[2\], only in b: \[\]"):
        paired({0: 0.9, 1: 0.8, 2: 0.5}, {0: 0.7, 1: 0.8})
    assert math.isfinite(p["ci_low"]) and np.isfinite(p["ci_high"])


def test_holm_adjusts_in_the_given_order():
    from benchmarks.experiments.common import holm

    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
