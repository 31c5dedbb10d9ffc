"""quant.precision: hls4ml's lookup order, its spellings, the three file formats, and the
per-layer settings the FPGA estimate takes."""

import json

import numpy as np
import pytest

from hwprune.errors import OptionError
from hwprune.fpga.estimate import Options, estimate
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Dense, ReLU
from hwprune.quant.calibrate import calibrate
from hwprune.ir.fixed import Fixed, Overflow, Rounding
from hwprune.quant.losses import losses
from hwprune.quant.precision import PrecisionSpec, chosen_config, config_text, parse_config, read_config


def _graph():
    rng = np.random.default_rng(0)
    return Graph.chain("m", (6,), (Dense("fc1", rng.normal(size=(5, 6)), rng.normal(size=5) * 0.1), ReLU("relu1"),
                             Dense("fc2", rng.normal(size=(3, 5)), rng.normal(size=3) * 0.1)))


def test_lookup_order_is_hls4mls():
    spec = parse_config({"Model": {"Precision": {"default": "fixed<16,6>", "accum": "fixed<24,12>"}},
                         "LayerName": {"fc1": {"Precision": {"default": "fixed<10,4>", "result": "auto"}},
                                       "fc2": {"Precision": "ap_ufixed<8,2,AP_RND,AP_SAT>"}}}, "test")
    assert spec.type_for("fc1", "weight") == Fixed(10, 4)  # the layer's default before the model's key
    assert spec.type_for("fc1", "result") is None  # auto: calibrate
    assert spec.type_for("relu1", "accum") == Fixed(24, 12)  # the model's key before the model's default
    assert spec.type_for("relu1", "result") == Fixed(16, 6)
    assert spec.type_for("fc2", "bias") == Fixed(8, 2, False, Rounding.RND, Overflow.SAT)


@pytest.mark.parametrize("suffix, text", [
    (".yaml", "HLSConfig:\n  Model:\n    Precision: fixed<12,4>\n    ReuseFactor: 2\n    Strategy: Resource\n"
              "  LayerName: {fc1: {ReuseFactor: 3, Strategy: Latency}}\n"),
    (".json", json.dumps({"Model": {"Precision": "fixed<12,4>", "ReuseFactor": 2, "Strategy": "resource"},
                          "LayerName": {"fc1": {"ReuseFactor": 3, "Strategy": "Latency"}}})),
    (".toml", 'Model = {Precision = "fixed<12,4>", ReuseFactor = 2, Strategy = "Resource"}\n'
              '[LayerName.fc1]\nReuseFactor = 3\nStrategy = "Latency"\n'),
])
def test_three_formats_read_alike(tmp_path, suffix, text):
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    spec = read_config(path)
    assert spec.model == {"default": Fixed(12, 4)} and spec.reuse_factor == 2 and spec.strategy == "resource"
    assert spec.layer_reuse == {"fc1": 3} and spec.layer_strategy == {"fc1": "latency"}


@pytest.mark.parametrize("data, message", [
    ({"Model": {"Precison": "fixed<8,2>"}}, "unknown key 'Precison'"),
    ({"LayerName": {"fc1": {"Precision": {"wieght": "fixed<8,2>"}}}}, "unknown precision key 'wieght'"),
    ({"Model": {"ReuseFactor": 0}}, "ReuseFactor must be a positive integer"),
    ({"Model": {"Strategy": "fast"}}, "Strategy must be Latency, Resource or distributed_arithmetic"),
    ({"Model": {"Precision": "fixed<8>"}}, "cannot read fixed-point type"),
])
def test_bad_configs_name_the_key(data, message):
    with pytest.raises(OptionError, match=message):
        parse_config(data, "test")


def test_layer_checks_name_the_layer():
    graph = _graph()
    with pytest.raises(OptionError, match="no layer named 'fc9'"):
        calibrate(graph, np.ones((4, 6)), spec=parse_config({"LayerName": {"fc9": {"ReuseFactor": 2}}}, "t"))
    with pytest.raises(OptionError, match="layer 'relu1' \\(relu\\) has no weight type"):
        calibrate(graph, np.ones((4, 6)), spec=parse_config({"LayerName": {"relu1": {"Precision": {"weight": "fixed<8,2>"}}}}, "t"))


def test_uniform_spec_sets_every_type_and_config_round_trips():
    graph, x = _graph(), np.random.default_rng(1).normal(size=(32, 6))
    t = Fixed(12, 5, True, Rounding.RND, Overflow.SAT)
    q = calibrate(graph, x, spec=PrecisionSpec.uniform(str(t)))
    assert q.input_t == t and all(v == t for layer in q.layers for v in layer.types().values())
    back = calibrate(graph, x, spec=parse_config(json.loads(config_text(chosen_config(q), "c.json")), "t"))
    _same(back, q)
    calibrated = calibrate(graph, x)
    _same(calibrate(graph, x, spec=parse_config(json.loads(config_text(chosen_config(calibrated), "c.json")), "t")),
          calibrated)


def _same(a, b):
    assert a.input_t == b.input_t
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert la.types() == lb.types(), la.name
        for key, value in la.arrays().items():
            assert np.array_equal(value, lb.arrays()[key]), (la.name, key)


def test_losses_name_layer_and_bits():
    graph = _graph()
    x = np.random.default_rng(1).normal(size=(32, 6)) * 8  # beyond fixed<8,3>'s +-4
    lines = losses(graph, x, PrecisionSpec.uniform("fixed<8,3>"))
    assert any(line.startswith("input: ") and "the type has 3" in line for line in lines)
    assert not losses(graph, x, PrecisionSpec())  # nothing given, nothing checked


def test_estimate_takes_per_layer_strategy_and_reuse():
    q = calibrate(_graph(), np.random.default_rng(1).normal(size=(32, 6)))
    est = estimate(q, Options(layers=(("fc1", "resource", 3),)))
    rows = {r.name: r for r in est.layers}
    assert rows["fc1"].ii == 3 and rows["fc2"].ii == 1
