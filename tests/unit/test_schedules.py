import math

import pytest

from hwprune.errors import OptionError
from hwprune.prune import schedules


def test_constant_holds_its_value():
    schedule = schedules.constant(0.8)
    assert [schedule(step) for step in (0, 1, 10_000)] == [0.8, 0.8, 0.8]


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "x", None])
def test_sparsity_outside_unit_interval_is_an_option_error(bad):
    with pytest.raises(OptionError, match="sparsity"):
        schedules.constant(bad)


def test_polynomial_decay_matches_zhu_gupta_formula():
    s_i, s_f, t0, t1 = 0.1, 0.9, 100, 500
    for step in range(t0, t1):
        expected = s_f + (s_i - s_f) * (1 - (step - t0) / (t1 - t0)) ** 3
        assert math.isclose(schedules.polynomial_decay(step, s_i, s_f, t0, t1), expected)


def test_polynomial_decay_before_begin_and_after_end():
    assert schedules.polynomial_decay(0, 0.2, 0.95, 10, 20) == 0.2
    assert schedules.polynomial_decay(9, 0.2, 0.95, 10, 20) == 0.2
    assert schedules.polynomial_decay(10, 0.2, 0.95, 10, 20) == pytest.approx(0.2)
    assert schedules.polynomial_decay(20, 0.2, 0.95, 10, 20) == 0.95
    assert schedules.polynomial_decay(10**6, 0.2, 0.95, 10, 20) == 0.95


def test_polynomial_decay_changes_only_every_frequency_steps():
    values = [schedules.polynomial_decay(t, 0.0, 0.9, 0, 100, frequency=10) for t in range(100)]
    changes = [t for t in range(1, 100) if values[t] != values[t - 1]]
    assert changes == list(range(10, 100, 10))
    # Between events the value is the one of the last event.
    assert values[15] == schedules.polynomial_decay(10, 0.0, 0.9, 0, 100)


def test_polynomial_decay_is_monotone_and_front_loaded():
    values = [schedules.polynomial_decay(t, 0.0, 0.9, 0, 100) for t in range(101)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    # Cubic: more than half of the pruning happens in the first quarter.
    assert values[25] > 0.9 / 2


def test_polynomial_decay_power_one_is_linear():
    assert schedules.polynomial_decay(50, 0.0, 0.8, 0, 100, power=1) == pytest.approx(0.4)


def test_polynomial_decay_rejects_bad_options():
    with pytest.raises(OptionError, match="frequency"):
        schedules.polynomial_decay(0, 0.0, 0.9, 0, 10, frequency=0)
    with pytest.raises(OptionError, match="before begin"):
        schedules.polynomial_decay(0, 0.0, 0.9, 10, 5)


@pytest.mark.parametrize("rounds,final", [(1, 0.5), (5, 0.9), (10, 0.98), (3, 0.0)])
def test_iterative_density_is_geometric(rounds, final):
    for k in range(rounds + 1):
        density = 1 - schedules.iterative(k, rounds, final)
        assert density == pytest.approx((1 - final) ** (k / rounds))
    assert schedules.iterative(0, rounds, final) == 0.0
    assert schedules.iterative(rounds, rounds, final) == final


def test_iterative_removes_the_same_fraction_of_what_remains_each_round():
    rounds, final = 6, 0.95
    fraction = schedules.per_round_fraction(rounds, final)
    for k in range(rounds):
        before = 1 - schedules.iterative(k, rounds, final)
        after = 1 - schedules.iterative(k + 1, rounds, final)
        assert (before - after) / before == pytest.approx(fraction)


def test_iterative_rejects_bad_rounds():
    with pytest.raises(OptionError, match="rounds"):
        schedules.iterative(0, 0, 0.9)
    with pytest.raises(OptionError, match="round must be"):
        schedules.iterative(4, 3, 0.9)


@pytest.mark.parametrize("sparsity, pattern", [(0.5, (2, 4)), (0.75, (1, 4)), (0.875, (1, 8)), (0.625, (3, 8)),
                                               (0.9375, (1, 16)), (0.0, (4, 4))])
def test_nm_pattern_of_a_sparsity(sparsity, pattern):
    assert schedules.nm_pattern(sparsity, None) == pattern
    n, m = pattern
    assert schedules.nm_pattern(sparsity, f"{n}:{m}") == pattern


@pytest.mark.parametrize("sparsity, given, message", [
    (0.9, None, r"0.9 is no N:M.*nearest are 0.875 \(1:8\), 0.9375 \(1:16\)"),
    (0.5, "1:4", r"removes 75.00%"), (0.5, "4:2", "0 < N <= M"), (0.5, "2-4", "N:M"),
])
def test_nm_pattern_errors(sparsity, given, message):
    with pytest.raises(OptionError, match=message):
        schedules.nm_pattern(sparsity, given)
