"""QONNX models (Quant, BipolarQuant) read as the types they declare, against qonnx's own
execution (``qonnx.core.onnx_exec.execute_onnx``) as the oracle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from hwprune import reference
from hwprune.errors import ModelError, UnsupportedLayerError
from hwprune.exportdir import read_vectors
from hwprune.frontends.onnx import load_onnx
from hwprune.pipeline import ExportOptions, export_model
from hwprune.ir.fixed import to_real

qonnx_exec = pytest.importorskip("qonnx.core.onnx_exec")
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.transformation.infer_shapes import InferShapes  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
MODEL = DATA / "qonnx_mlp.onnx"


def qonnx_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    model = ModelWrapper(str(path)).transform(InferShapes())
    name, out = model.graph.input[0].name, model.graph.output[0].name
    return np.concatenate([qonnx_exec.execute_onnx(model, {name: row[None].astype(np.float32)})[out] for row in x])


def _inputs(count: int = 120) -> np.ndarray:
    """k / 32: half of them lie halfway between two steps of the int8 input quantizer (scale
    2^-4), and some lie past its range, so rounding and saturation both decide values."""
    return np.random.default_rng(5).integers(-320, 320, size=(count, 12)) / 32.0


def test_qonnx_model_equals_qonnx_execution():
    graph = load_onnx(MODEL)
    assert graph.is_quantized
    assert str(graph.input_t) == "fixed<8,4,RND_CONV,SAT>"
    x = _inputs()
    expected = qonnx_outputs(MODEL, x)
    got = to_real(reference.run(graph, reference.quantize_input(graph, x)), graph.output_t)
    if not np.array_equal(got, expected):
        i, j = np.argwhere(got != expected)[0]
        pytest.fail(f"vector {i}, output {j}: hwprune {got[i, j]}, qonnx {expected[i, j]}")
    assert len(np.unique(expected)) > 10  # the outputs are not all saturated or zero


def test_export_is_bit_exact_with_no_calibration(tmp_path):
    out = export_model(MODEL, tmp_path / "out", options=ExportOptions())
    assert json.loads((out / "report.json").read_text())["bit_exact"] is True
    vectors = read_vectors(out)
    graph = load_onnx(MODEL)
    expected = qonnx_outputs(MODEL, vectors["x"][:40])
    assert np.array_equal(to_real(vectors["y_int"][:40], graph.output_t), expected)


def _variant(tmp_path, node_name: str, **changes) -> Path:
    model = onnx.load(MODEL)
    for node in model.graph.node:
        if node.name == node_name:
            for key, value in changes.items():
                if key.startswith("attr_"):
                    for attr in node.attribute:
                        if attr.name == key[5:]:
                            node.attribute.remove(attr)
                            break
                    node.attribute.append(helper.make_attribute(key[5:], value))
    for init in model.graph.initializer:
        if init.name in changes:
            init.CopyFrom(onnx.numpy_helper.from_array(np.asarray(changes[init.name], np.float32), init.name))
    path = tmp_path / "variant.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("node, changes, error, message", [
    ("q_a1", {"q_a1_scale": 0.3}, UnsupportedLayerError, r"'q_a1'.*not one power of two"),
    ("q_a1", {"q_a1_zeropt": 1.0}, UnsupportedLayerError, r"'q_a1'.*zero point"),
    ("q_a1", {"attr_rounding_mode": "HALF_UP"}, UnsupportedLayerError, r"'q_a1'.*rounding_mode 'HALF_UP'"),
    ("q_w1", {"attr_rounding_mode": "CEIL"}, ModelError, r"'q_w1'.*rounding_mode 'CEIL'"),
])
def test_unsupported_quant_nodes_are_named(tmp_path, node, changes, error, message):
    with pytest.raises(error, match=message):
        load_onnx(_variant(tmp_path, node, **changes))


def test_float_weights_without_an_exact_type_are_refused(tmp_path):
    """Float weights that no Quant put on a grid are kept when a type of at most 32 bits holds
    them exactly (float32 values of one magnitude do); these span 2^-23 to 3 and do not."""
    model = onnx.load(MODEL)
    gemm = next(n for n in model.graph.node if n.name == "fc1")
    gemm.input[1] = "w1"  # the float weights, not their Quant
    w1 = next(t for t in model.graph.initializer if t.name == "w1")
    weights = np.random.default_rng(0).normal(0, 0.5, (8, 12)).astype(np.float32)
    weights[0, 0], weights[0, 1] = 3.0, 1.1920929e-07
    w1.CopyFrom(onnx.numpy_helper.from_array(weights, "w1"))
    path = tmp_path / "float_weights.onnx"
    onnx.save(model, path)
    with pytest.raises(UnsupportedLayerError, match="'fc1'.*no exact fixed-point type"):
        load_onnx(path)
