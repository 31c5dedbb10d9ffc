"""Write tests/data/qonnx_mlp.onnx: a small QONNX model (Quant and BipolarQuant nodes, as
Brevitas and hls4ml's QONNX flow export them), built with onnx.helper from fixed random
weights. Run from the repository root: ``python tests/data/make_qonnx_model.py``.

input (1, 12) -> Quant (int8, scale 2^-4) -> Gemm (weights Quant int5 narrow, scale 2^-4;
bias Quant int8, scale 2^-6) -> Relu -> Quant (uint4, scale 2^-3) -> MatMul (weights
BipolarQuant, scale 2^-2) -> Add (bias Quant int8, scale 2^-5) -> Quant (int6 narrow,
scale 2^-3) -> output (1, 4).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DOMAIN = "qonnx.custom_op.general"


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def _quant(name: str, x: str, scale: float, bits: int, signed: int, narrow: int, nodes: list, inits: list) -> str:
    inits += [_const(f"{name}_scale", scale), _const(f"{name}_zeropt", 0.0), _const(f"{name}_bits", bits)]
    nodes.append(helper.make_node("Quant", [x, f"{name}_scale", f"{name}_zeropt", f"{name}_bits"], [name],
                                  name=name, domain=DOMAIN, signed=signed, narrow=narrow, rounding_mode="ROUND"))
    return name


def build() -> onnx.ModelProto:
    rng = np.random.default_rng(2027)
    nodes: list = []
    inits = [_const("w1", rng.normal(0, 0.5, (8, 12))), _const("b1", rng.normal(0, 0.5, 8)),
             _const("w2", rng.normal(0, 1.0, (8, 4))), _const("b2", rng.normal(0, 0.5, 4))]
    x = _quant("q_in", "inp", 2.0 ** -4, 8, 1, 0, nodes, inits)
    w1 = _quant("q_w1", "w1", 2.0 ** -4, 5, 1, 1, nodes, inits)
    b1 = _quant("q_b1", "b1", 2.0 ** -6, 8, 1, 0, nodes, inits)
    nodes.append(helper.make_node("Gemm", [x, w1, b1], ["fc1"], name="fc1", transB=1))
    nodes.append(helper.make_node("Relu", ["fc1"], ["relu1"], name="relu1"))
    a1 = _quant("q_a1", "relu1", 2.0 ** -3, 4, 0, 0, nodes, inits)
    inits.append(_const("w2_scale", 2.0 ** -2))
    nodes.append(helper.make_node("BipolarQuant", ["w2", "w2_scale"], ["q_w2"], name="q_w2", domain=DOMAIN))
    nodes.append(helper.make_node("MatMul", [a1, "q_w2"], ["fc2"], name="fc2"))
    b2 = _quant("q_b2", "b2", 2.0 ** -5, 8, 1, 0, nodes, inits)
    nodes.append(helper.make_node("Add", ["fc2", b2], ["fc2_bias"], name="fc2_bias"))
    _quant("out", "fc2_bias", 2.0 ** -3, 6, 1, 1, nodes, inits)
    graph = helper.make_graph(nodes, "qonnx_mlp", [helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, 12])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)],
                              producer_name="hwprune tests/data/make_qonnx_model.py")
    model.ir_version = 8
    return model


if __name__ == "__main__":
    out = Path(__file__).with_name("qonnx_mlp.onnx")
    onnx.save(build(), out)
    print(f"wrote {out}")
