"""Fuzzing the loaders: a mangled Keras config, ONNX proto or target TOML gives a Graph (or a
Target) or an HwpruneError, never another exception (which the CLI would print as a traceback).

Each fuzzer starts from a valid file and replaces, deletes or garbles parts of it; the files are
tiny, nothing is compiled, and the example counts are modest so the module stays fast.
"""

import copy
import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hwprune.errors import HwpruneError
from hwprune.frontends.keras import from_keras_file, from_keras_json
from hwprune.ir.graph import Graph
from hwprune.targets import Target, parse_target

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from hwprune.frontends.onnx import load_onnx  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

garbage = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10)


def _paths(node, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


@st.composite
def mangled(draw, document):
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            parent[path[-1]] = draw(garbage)
        elif isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    return doc


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _outcome(load):
    try:
        result = load()
    except HwpruneError:
        return "error"
    return result


KERAS = json.loads((DATA / "KERAS_3layer.json").read_text())


@FUZZ
@given(mangled(KERAS))
def test_fuzzed_keras_config_is_a_graph_or_an_hwprune_error(scratch, config):
    path = scratch / "k.json"
    path.write_text(json.dumps(config, allow_nan=True))
    result = _outcome(lambda: from_keras_json(path, DATA / "KERAS_3layer_weights.h5"))
    assert result == "error" or isinstance(result, Graph)


KERAS3 = {"class_name": "Sequential", "config": {"name": "s", "layers": [
    {"class_name": "InputLayer", "config": {"name": "input", "batch_shape": [None, 6]}},
    {"class_name": "Dense", "config": {"name": "dense", "units": 3, "activation": "relu", "use_bias": True}}]}}


@pytest.fixture(scope="module")
def keras3_weights():
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f["layers/dense/vars/0"] = np.ones((6, 3), np.float32)
        f["layers/dense/vars/1"] = np.zeros(3, np.float32)
    return buffer.getvalue()


@FUZZ
@given(mangled(KERAS3))
def test_fuzzed_keras3_file_is_a_graph_or_an_hwprune_error(scratch, keras3_weights, config):
    path = scratch / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config, allow_nan=True))
        archive.writestr("model.weights.h5", keras3_weights)
    result = _outcome(lambda: from_keras_file(path))
    assert result == "error" or isinstance(result, Graph)


@FUZZ
@given(st.sampled_from(["null", "[]", "7", '"text"', '{"config": null}', '{"class_name": "Model"}',
                        '{"config": {"layers": [null, 3]}}', '{"config": {"layers": [{"class_name": []}]}}']))
def test_degenerate_keras_documents(scratch, text):
    path = scratch / "d.json"
    path.write_text(text)
    assert _outcome(lambda: from_keras_json(path, DATA / "KERAS_3layer_weights.h5")) == "error"


def _onnx_model():
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "cw"),
             numpy_helper.from_array(np.zeros(4, np.float32), "cb"),
             numpy_helper.from_array(rng.normal(size=(3, 64)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(3, np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


BASE = _onnx_model()
ATTRIBUTE_VALUES = st.one_of(st.integers(-2**40, 2**40), st.floats(allow_nan=True, width=32),
                             st.lists(st.integers(-2**33, 2**33), min_size=1, max_size=6), st.text(min_size=1, max_size=4))
OPS = ["Conv", "Relu", "MaxPool", "AveragePool", "Flatten", "Gemm", "MatMul", "Add", "Reshape", "Pad",
       "BatchNormalization", "GlobalAveragePool", "Softmax", "Identity", "Constant", "Tanh"]


@st.composite
def mangled_onnx(draw):
    model = copy.deepcopy(BASE)
    graph = model.graph
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["attr", "op", "dims", "input_dims", "drop_node", "rename", "init_values"]))
        node = graph.node[draw(st.integers(0, len(graph.node) - 1))] if len(graph.node) else None
        if action == "attr" and node is not None:
            name = draw(st.sampled_from(["pads", "strides", "kernel_shape", "axis", "transB", "group", "dilations",
                                         "alpha", "auto_pad", "ceil_mode"]))
            kept = [a for a in node.attribute if a.name != name]
            del node.attribute[:]
            node.attribute.extend(kept + [helper.make_attribute(name, draw(ATTRIBUTE_VALUES))]
                                  if draw(st.booleans()) else kept)
        elif action == "op" and node is not None:
            node.op_type = draw(st.sampled_from(OPS))
        elif action == "dims":
            tensor = graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
            dims = draw(st.lists(st.integers(0, 2**40), min_size=0, max_size=4))
            values = np.frombuffer(tensor.raw_data, np.float32) if tensor.raw_data else np.zeros(1, np.float32)
            del tensor.dims[:]
            tensor.dims.extend(dims)
            if draw(st.booleans()) and 0 < int(np.prod(dims, dtype=object)) <= 4096:
                tensor.raw_data = np.resize(values, int(np.prod(dims))).astype(np.float32).tobytes()
        elif action == "input_dims":
            dims = graph.input[0].type.tensor_type.shape.dim
            dims[draw(st.integers(0, len(dims) - 1))].dim_value = draw(st.integers(0, 2**40))
        elif action == "drop_node" and len(graph.node) > 1:
            del graph.node[draw(st.integers(0, len(graph.node) - 1))]
        elif action == "rename" and node is not None:
            node.input[0] = draw(st.sampled_from(["x", "c", "r", "p", "f", "y", "w", "nowhere"]))
        elif action == "init_values":
            tensor = graph.initializer[draw(st.integers(0, len(graph.initializer) - 1))]
            if tensor.raw_data and len(tensor.raw_data) % 4 == 0:  # (an earlier "dims" may have left no data)
                values = np.frombuffer(tensor.raw_data, np.float32).copy()
                values[0] = draw(st.sampled_from([np.nan, np.inf, 1e38, -0.0]))
                tensor.raw_data = values.tobytes()
    return model.SerializeToString()


@FUZZ
@given(mangled_onnx())
def test_fuzzed_onnx_is_a_graph_or_an_hwprune_error(scratch, data):
    path = scratch / "m.onnx"
    path.write_bytes(data)
    result = _outcome(lambda: load_onnx(path))
    assert result == "error" or isinstance(result, Graph)


@FUZZ
@given(st.binary(max_size=64), st.integers(0, 1000))
def test_garbled_onnx_bytes_are_an_hwprune_error(scratch, noise, where):
    data = bytearray(BASE.SerializeToString())
    where = min(where, len(data))
    data[where:where + len(noise)] = noise
    path = scratch / "g.onnx"
    path.write_bytes(bytes(data))
    result = _outcome(lambda: load_onnx(path))
    assert result == "error" or isinstance(result, Graph)


TARGET = (Path(__file__).resolve().parents[2] / "targets" / "stm32l4r5.toml").read_text()
toml_values = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.booleans(),
                        st.text(max_size=6).map(json.dumps), st.just("[1, 2]"), st.just("{ a = 1 }"),
                        st.just("1979-05-27"), st.just("inf"), st.just("nan"), st.just("[]"))


@FUZZ
@given(st.data())
def test_fuzzed_target_toml_values_are_a_target_or_an_hwprune_error(scratch, data):
    lines = TARGET.splitlines()
    keyed = [i for i, line in enumerate(lines) if "=" in line and not line.lstrip().startswith("#")]
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.sampled_from(keyed))
        key = lines[index].split("=", 1)[0].strip()
        value = data.draw(toml_values)
        if isinstance(value, float):
            value = repr(value).replace("nan", "nan").replace("inf", "inf")
        lines[index] = f"{key} = {value}"
    path = scratch / "stm32l4r5.toml"
    path.write_text("\n".join(lines) + "\n")
    result = _outcome(lambda: parse_target(path))
    assert result == "error" or isinstance(result, Target)
