"""The graph IR: layers naming their inputs, checks at construction, name lookups, the
on-disk versions, the Identity pass, and the merge layers' fixed-point rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwprune import reference
from hwprune.errors import ModelError, ShapeError
from hwprune.ir import (
    LAYER_KINDS, Add, Clip, Concatenate, Dense, Flatten, Graph, GraphInput, Identity, Multiply, ReLU, Reshape, kinds,
    load_graph, save_graph,
)
from hwprune.ir.passes import remove_identity
from hwprune.quant.calibrate import QuantConfig, calibrate
from hwprune.ir.fixed import Fixed, quantize, to_real


def _diamond(order=None) -> Graph:
    layers = [Dense("a", np.eye(4), None, inputs=("x",)), ReLU("b", inputs=("a",)), Dense("c", np.eye(4), None, inputs=("a",)),
              Add("d", inputs=("b", "c"))]
    return Graph("g", (GraphInput("x", (4,)),), tuple(layers if order is None else [layers[i] for i in order]))


def test_layers_name_their_inputs_and_are_put_in_topological_order():
    g = _diamond(order=(3, 2, 1, 0))
    assert [l.name for l in g.layers] == ["a", "c", "b", "d"] and g.outputs == ("d",)
    ordered = _diamond()
    assert [l.name for l in ordered.consumers("a")] == ["b", "c"] and ordered.producer("x") is None
    assert ordered.input_shapes("d") == ((4,), (4,)) and not ordered.is_chain
    assert Graph.chain("c", (4,), (ReLU("r"),)).is_chain


def test_graph_errors_name_the_layer():
    x = (GraphInput("x", (4,)),)
    with pytest.raises(ModelError, match=r"layers form a cycle: (p -> q -> p|q -> p -> q)"):
        Graph("g", x, (ReLU("p", inputs=("q",)), ReLU("q", inputs=("p",))))
    with pytest.raises(ModelError, match=r"layer 'p': input 'nowhere' is neither a layer nor an input"):
        Graph("g", x, (ReLU("p", inputs=("nowhere",)),))
    with pytest.raises(ShapeError, match=r"layer 's'.*'x' \(4,\) and 'd' \(3,\) have mismatched shapes"):
        Graph("g", x, (Dense("d", np.ones((3, 4)), None, inputs=("x",)), Add("s", inputs=("x", "d"))))
    with pytest.raises(ModelError, match=r"layer 's': Add reads 2 inputs, it names 1"):
        Graph("g", x, (Add("s", inputs=("x",)),))
    with pytest.raises(ShapeError, match=r"layer 'k'.*does not match"):
        Graph("g", (GraphInput("x", (2, 3)), GraphInput("y", (3, 3))), (Concatenate("k", axis=-1, inputs=("x", "y")),))


def test_kind_registry_holds_every_property():
    assert kinds(spatial=True) == {"conv1d", "conv2d", "maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d",
                                   "globalavgpool1d", "globalavgpool2d", "int8_conv2d", "int8_maxpool2d",
                                   "int8_avgpool2d"}
    assert kinds(weighted=True) == {"dense", "conv1d", "conv2d", "int8_dense", "int8_conv2d"}
    assert {"add", "multiply", "relu", "clip"} <= kinds(elementwise=True)
    assert {"flatten", "reshape", "identity", "softmax"} == kinds(passthrough=True)
    assert set(LAYER_KINDS) >= {"add", "concatenate", "multiply", "clip", "reshape", "identity"}


def test_identity_pass_rewires_readers_and_outputs():
    g = Graph.chain("g", (4,), (Identity("i0"), ReLU("r"), Identity("i1")))
    clean = remove_identity(g)
    assert [l.name for l in clean.layers] == ["r"] and clean.outputs == ("r",) and clean.layer("r").inputs == ("input",)


def test_version_2_round_trip_and_version_1_chain_still_loads(rng, tmp_path):
    q = calibrate(_diamond(), rng.normal(size=(40, 4)), QuantConfig(8, 8))
    save_graph(q, tmp_path / "v2")
    back = load_graph(tmp_path / "v2")
    assert [l.inputs for l in back.layers] == [l.inputs for l in q.layers] and back.outputs == q.outputs
    x = reference.quantize_input(q, rng.normal(size=(9, 4)))
    assert np.array_equal(reference.run(back, x), reference.run(q, x))
    chain = calibrate(Graph.chain("c", (2, 3), (Flatten("f"), Dense("d", rng.normal(size=(2, 6)), None), ReLU("r"))),
                      rng.normal(size=(30, 2, 3)), QuantConfig(8, 8))
    save_graph(chain, tmp_path / "v1")
    meta = json.loads((tmp_path / "v1" / "graph.json").read_text())
    old = {"format": meta["format"], "version": 1, "name": "c", "input_shape": [2, 3], "input_t": meta["inputs"][0]["t"],
           "layers": [{k: v for k, v in e.items() if k != "inputs"} for e in meta["layers"]]}
    (tmp_path / "v1" / "graph.json").write_text(json.dumps(old))
    loaded = load_graph(tmp_path / "v1")
    assert loaded.is_chain and loaded.input_t == chain.input_t
    x = reference.quantize_input(chain, rng.normal(size=(5, 2, 3)))
    assert np.array_equal(reference.run(loaded, x), reference.run(chain, x))


def test_add_aligns_operands_exactly_then_casts_once():
    a_t, b_t, out_t = Fixed(8, 3), Fixed(6, 5, signed=False), Fixed(10, 6)
    g = Graph("g", (GraphInput("a", (3,), a_t), GraphInput("b", (3,), b_t)), (Add("s", out_t, inputs=("a", "b")),))
    a = np.array([[-128, 5, 127]]), np.array([[63, 1, 0]])
    got = reference.KERNELS["add"](g.layer("s"), list(a), [a_t, b_t])
    exact = to_real(a[0], a_t) + to_real(a[1], b_t)
    assert np.array_equal(got, quantize(exact, out_t))


def test_multiply_concatenate_clip_reshape_match_their_real_definitions(rng):
    t = Fixed(8, 3)
    x = rng.integers(-128, 128, size=(4, 2, 3))
    y = rng.integers(-128, 128, size=(4, 3))
    out_t = Fixed(16, 6)
    prod = reference.KERNELS["multiply"](Multiply("m", out_t, inputs=("x", "y")), [x, y], [t, t])
    assert np.array_equal(prod, quantize(to_real(x, t) * to_real(y, t)[:, None, :], out_t))
    cat = reference.KERNELS["concatenate"](Concatenate("k", 0, Fixed(9, 4), inputs=("x", "x")), [x, x], [t, t])
    assert cat.shape == (4, 4, 3) and np.array_equal(cat[:, 2:], x)
    clip = reference.KERNELS["clip"](Clip("c", 0.0, 6.0, Fixed(8, 3, signed=False), inputs=("x",)), x, t)
    assert np.array_equal(clip, quantize(np.clip(to_real(x, t), 0, 6), Fixed(8, 3, signed=False)))
    g = Graph.chain("g", (2, 3), (Reshape("r", (3, 2)),), t)
    assert np.array_equal(reference.run(g, x), x.reshape(4, 3, 2))


def test_a_topological_order_is_kept_as_given():
    x = (GraphInput("x", (4,)),)
    layers = (ReLU("b", inputs=("x",)), ReLU("a", inputs=("x",)), Add("s", inputs=("a", "b")),
              ReLU("c", inputs=("b",)), Add("t", inputs=("s", "c")))
    assert [l.name for l in Graph("g", x, layers, outputs=("t",)).layers] == ["b", "a", "s", "c", "t"]
    shuffled = (layers[2], layers[4], layers[3], layers[1], layers[0])  # not topological: sorted, stably
    assert [l.name for l in Graph("g", x, shuffled, outputs=("t",)).layers] == ["a", "b", "s", "c", "t"]
