import json

import numpy as np
import pytest

from hwprune import reference
from hwprune.errors import ModelError, ShapeError, WeightError
from hwprune.ir import Dense, Flatten, Graph, ReLU, Softmax, load_graph, save_graph
from hwprune.quant.calibrate import QuantConfig, calibrate


def mlp(rng, sizes=(6, 5, 3)):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(Dense(f"fc{i}", rng.normal(size=(b, a)), rng.normal(size=b)))
        layers.append(ReLU(f"relu{i}"))
    return Graph.chain("net", (sizes[0],), tuple(layers[:-1]) + (Softmax("sm"),))


def test_shapes_are_checked_on_build(rng):
    g = mlp(rng)
    assert [g.shape_of(l.name) for l in g] == [(5,), (5,), (3,), (3,)] and g.output_shape == (3,)
    with pytest.raises(ShapeError, match=r"layer 'fc1'.*expects input shape \(5,\), got \(4,\)"):
        Graph.chain("bad", (6,), (Dense("fc0", np.ones((4, 6)), None), Dense("fc1", np.ones((2, 5)), None)))
    with pytest.raises(ShapeError, match="add a Flatten"):
        Graph.chain("bad", (2, 3), (Dense("fc0", np.ones((4, 6)), None),))
    assert Graph.chain("ok", (2, 3), (Flatten("f"), Dense("fc0", np.ones((4, 6)), None))).output_shape == (4,)


def test_graph_rules(rng):
    with pytest.raises(ModelError, match="unique"):
        Graph.chain("g", (2,), (ReLU("a"), ReLU("a")))
    with pytest.raises(ModelError, match="Softmax is only supported as a model output"):
        Graph.chain("g", (2,), (Softmax("s"), ReLU("a")))
    with pytest.raises(ModelError, match="C identifier"):
        Graph.chain("my-net", (2,), (ReLU("a"),))
    with pytest.raises(WeightError, match=r"layer 'fc'.*non-finite.*\(1, 0\)"):
        Dense("fc", np.array([[1.0], [np.nan]]), None)
    with pytest.raises(ShapeError, match="bias shape"):
        Dense("fc", np.ones((2, 2)), np.ones(3))


def test_quantized_graph_round_trips_through_disk(rng, tmp_path):
    g = mlp(rng)
    q = calibrate(g, rng.normal(size=(50, 6)), QuantConfig(6, 7))
    save_graph(q, tmp_path)
    back = load_graph(tmp_path)
    assert [str(back.type_of(l.name)) for l in back] == [str(q.type_of(l.name)) for l in q]
    x = reference.quantize_input(q, rng.normal(size=(30, 6)))
    assert np.array_equal(reference.run(back, x), reference.run(q, x))
    for a, b in zip(q.dense_layers(), back.dense_layers()):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)


def test_malformed_graph_files_are_named(rng, tmp_path):
    save_graph(mlp(rng), tmp_path)
    meta = json.loads((tmp_path / "graph.json").read_text())
    meta["layers"][0]["kind"] = "lstm"
    (tmp_path / "graph.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="unknown layer kind 'lstm'"):
        load_graph(tmp_path)
    (tmp_path / "graph.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_graph(tmp_path)
    with pytest.raises(ModelError, match="no graph.json"):
        load_graph(tmp_path / "missing")
