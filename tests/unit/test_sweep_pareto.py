"""The sweep's grid, objectives and Pareto front, without running any trial."""

import itertools

import pytest

from hwprune.errors import OptionError
from hwprune.sweep import Point, SweepSpec, aggregate, best_point, check_objective, dominates, pareto_front, parse_list


def _point(name, accuracy, objective):
    return Point(name, "magnitude", "oneshot", 0.5, 8, 1, accuracy, 0.0, objective, 0.0, True, (name,))


def _spec(**changes):
    base = dict(model_sha256="m", data_sha256="d", test_sha256=None, target="host", sparsities=(0.5, 0.9),
                methods=("magnitude", "neurons"), schedules=("oneshot",), bits=(4, 8), seeds=3, objective="flash",
                min_accuracy=0.9)
    return SweepSpec(**{**base, **changes})


def test_grid_expands_to_every_combination_with_unique_ids():
    trials = _spec().trials()
    assert len(trials) == 2 * 2 * 1 * 2 * 3
    assert len({t.id for t in trials}) == len(trials)
    assert len({t.config for t in trials}) == len(trials) // 3


@pytest.mark.parametrize("change, word", [
    ({"sparsities": ()}, "--sparsity is empty"), ({"methods": ()}, "--method is empty"),
    ({"sparsities": (1.0,)}, "[0, 1)"), ({"bits": (1,)}, "2 to 16"), ({"methods": ("bogus",)}, "bogus"),
    ({"seeds": 0}, "--seeds"), ({"objective": "speed"}, "--objective"), ({"min_accuracy": 97.0}, "fraction"),
    ({"bits": (8, 8)}, "twice"), ({"methods": ("nm",), "sparsities": (0.5, 0.7)}, "0.7 is no N:M"),
])
def test_bad_grids_name_the_option(change, word):
    with pytest.raises(OptionError, match=word.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        _spec(**change)


def test_parse_list_rejects_empty_and_garbage():
    assert parse_list("0.5, 0.9", float, "--sparsity") == (0.5, 0.9)
    with pytest.raises(OptionError, match="empty"):
        parse_list(" , ", float, "--sparsity")
    with pytest.raises(OptionError, match="floats"):
        parse_list("0.5,lots", float, "--sparsity")


def test_objective_must_be_measurable_on_the_target():
    assert check_objective("cycles", "mcu", "stm32l4r5").keys == ("cycles",)
    with pytest.raises(OptionError, match="lut cannot be measured on stm32l4r5"):
        check_objective("lut", "mcu", "stm32l4r5")
    with pytest.raises(OptionError, match="flash cannot be measured"):
        check_objective("flash", "fpga", "xc7z020")


def test_front_against_brute_force_on_random_points():
    import random

    rng = random.Random(3)
    for _ in range(200):
        points = [_point(f"p{i}", rng.choice([0.5, 0.8, 0.9, 0.95, 1.0]), rng.choice([10, 20, 30, 40]))
                  for i in range(rng.randint(1, 12))]
        front = {p.config for p in pareto_front(points)}
        for p in points:
            dominated = any(q.accuracy >= p.accuracy and q.objective <= p.objective
                            and (q.accuracy, q.objective) != (p.accuracy, p.objective) for q in points)
            assert (p.config in front) == (not dominated)
        best = best_point(points, 0.9)
        meeting = [p for p in points if p.accuracy >= 0.9]
        if not meeting:
            assert best is None
        else:
            assert best.objective == min(p.objective for p in meeting)
            assert best.config in front


def test_dominance_is_strict():
    a, b = _point("a", 0.9, 10), _point("b", 0.9, 10)
    assert not dominates(a, b) and not dominates(b, a)
    assert dominates(_point("c", 0.95, 10), a)
    assert dominates(_point("d", 0.9, 9), a)


def test_aggregate_means_over_seeds_and_skips_failed_trials():
    records = [
        {"id": f"c-seed{s}", "config": "c", "method": "magnitude", "schedule": "oneshot", "sparsity": 0.5, "bits": 8,
         "seed": s, "accuracy": acc, "objective": obj, "bit_exact": True}
        for s, acc, obj in [(0, 0.9, 100.0), (1, 1.0, 110.0)]
    ] + [{"id": "c-seed2", "config": "c", "seed": 2, "error": "boom"}]
    (point,) = aggregate(records)
    assert point.seeds == 2 and point.accuracy == pytest.approx(0.95) and point.objective == 105.0
    assert point.accuracy_sd == pytest.approx(0.0707106781)
    assert list(itertools.chain(point.trials)) == ["c-seed0", "c-seed1"]


def test_energy_objective_reads_the_proxy_total_from_a_report():
    # a host export has no emulated energy: the proxy is an object of parts with a total
    proxy = {"total": 9100.0, "compute": 1000.0, "weight_reads": 6000.0, "activation_traffic": 2100.0,
             "layers": [], "float32_dense": {"total": 1.0e6}}
    assert check_objective("energy", "host", "host").value({"energy_proxy_pj": proxy}) == pytest.approx(9100.0e-6)
    assert check_objective("energy", "mcu", "stm32l4r5").value({"energy_uj": 2.5, "energy_proxy_pj": proxy}) == 2.5


def test_a_trial_that_raises_unexpectedly_is_recorded_with_its_message(monkeypatch):
    from hwprune.sweep import runner

    def broken(spec, trial, inputs):
        raise TypeError("float() argument must be a string or a real number, not 'dict'")

    monkeypatch.setattr(runner, "run_trial", broken)
    trial = _spec().trials()[0]
    record, archive = runner._trial_task(_spec(), trial, None)
    assert archive is None and record["id"] == trial.id
    assert record["error"] == "TypeError: float() argument must be a string or a real number, not 'dict'"


def test_force_replaces_only_a_folder_that_holds_nothing_but_a_sweep(tmp_path, monkeypatch):
    from hwprune.errors import OutputError
    from hwprune.outputs import check_target
    from hwprune.sweep.outputs import foreign_content
    from hwprune.sweep.runner import SPEC_FILE, prepare_folder

    out = tmp_path / "s"
    assert prepare_folder(out, _spec(), resume=False, force=False) is False  # a new sweep: started in place
    (out / "sweep.json").write_text("{}")
    assert prepare_folder(out, _spec(), resume=False, force=True) is True  # replaced beside, nothing removed here
    assert sorted(p.name for p in out.iterdir()) == [SPEC_FILE, "sweep.json", "trials"]

    def check(inputs=()):
        check_target(out, True, inputs, folder=True, foreign=foreign_content)

    check()  # a sweep's own files: replaceable
    (out / "best").mkdir()
    (out / "best" / "report.md").write_text("x")
    with pytest.raises(OutputError, match="best/ is not an export hwprune wrote"):
        check()
    (out / "best" / "report.md").unlink()
    (out / "best").rmdir()
    (out / "trials" / "t1").mkdir()
    (out / "trials" / "t1" / "notes.txt").write_text("the user's notes")
    with pytest.raises(OutputError, match="trials/t1/notes.txt, which hwprune did not write"):
        check()
    (out / "trials" / "t1" / "notes.txt").unlink()
    (out / "model.pt").write_text("the user's model")
    with pytest.raises(OutputError, match="it is or holds the input"):
        check(inputs=(out / "model.pt",))
    with pytest.raises(OutputError, match="holds model.pt, which hwprune did not write"):
        check()
    (out / "model.pt").unlink()
    monkeypatch.chdir(out / "trials")
    with pytest.raises(OutputError, match="current folder"):
        check()
    assert (out / SPEC_FILE).is_file()
