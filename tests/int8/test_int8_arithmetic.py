"""TFLite's int8 arithmetic (ir/int8_types.py) against hand-worked values and TFLM's own tensors."""

import numpy as np
import pytest

from hwprune.ir.int8_types import (
    Int8Affine, activation_range, add_int8, add_params, multiply_by_quantized_multiplier, parse_type,
    quantize_multiplier, rounding_divide_by_pot,
)


def test_quantize_multiplier_matches_frexp_and_round():
    m, e = quantize_multiplier(0.75)
    assert (m, e) == (3 << 29, 0)  # 0.75 = 0.75 * 2**0, Q31 significand 0.75 * 2**31
    m, e = quantize_multiplier(0.001)
    assert 1 << 30 <= m < 1 << 31 and abs(m * 2.0 ** (e - 31) - 0.001) < 1e-12
    assert quantize_multiplier(0.0) == (0, 0)


def test_rounding_divide_by_pot_rounds_half_away_from_zero():
    x = np.array([5, -5, 6, -6, 7, -7])
    assert rounding_divide_by_pot(x, 1).tolist() == [3, -3, 3, -3, 4, -4]


def test_multiply_by_quantized_multiplier_double_rounding():
    # 0.5 exactly: m = 2**30, shift 0. The high multiply nudges by +2**30 (or 1 - 2**30 below
    # zero) then truncates: +1.5 -> 2 but -1.5 -> -1 (gemmlowp's rounding, not half away)
    x = np.array([3, -3, 101, -101])
    assert multiply_by_quantized_multiplier(x, 1 << 30, 0).tolist() == [2, -1, 51, -50]
    # shift -1 (a quarter): two roundings, 3 * 0.25 -> high mul 2, then 2 / 2 -> 1
    assert multiply_by_quantized_multiplier(np.array([3]), 1 << 30, -1).tolist() == [1]


def test_activation_range_relu6():
    t = Int8Affine(6 / 255, -128)
    assert activation_range("relu6", t) == (-128, 127)
    assert activation_range("relu", Int8Affine(0.1, -10)) == (-10, 127)


def test_type_strings_read_back_exactly():
    t = Int8Affine(np.float32(0.0039215689), -128)
    assert parse_type(str(t)) == t
    assert str(parse_type("int32")) == "int32"


def test_add_equals_tflm_on_resnet_tensors(data_dir):
    """The three residual ADDs of ResNet-8: inputs and outputs read from TFLM's interpreter."""
    pytest.importorskip("tflite_micro")
    tflite = pytest.importorskip("tflite")
    from tflite_micro.python.tflite_micro import runtime

    path = data_dir / "pretrainedResnet_quant.tflite"
    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    sg = model.Subgraphs(0)

    def qtype(ix):
        q = sg.Tensors(ix).Quantization()
        return Int8Affine(float(q.ScaleAsNumpy()[0]), int(q.ZeroPointAsNumpy()[0]))

    adds = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == 0:  # ADD
            opts = tflite.AddOptions()
            table = op.BuiltinOptions()
            opts.Init(table.Bytes, table.Pos)
            a, b = (int(v) for v in op.InputsAsNumpy())
            adds.append((a, b, int(op.Outputs(0)), {0: "none", 1: "relu"}[opts.FusedActivationFunction()]))
    assert len(adds) == 3
    interpreter = runtime.Interpreter.from_file(str(path),
                                                intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    rng = np.random.default_rng(1)
    for _ in range(3):
        interpreter.set_input(rng.integers(-128, 128, (1, 32, 32, 3)).astype(np.int8), 0)
        interpreter.invoke()
        for a, b, out, act in adds:
            p = add_params(qtype(a), qtype(b), qtype(out), act)
            got = add_int8(interpreter.GetTensor(a, 0)["tensor_data"], interpreter.GetTensor(b, 0)["tensor_data"], p)
            want = interpreter.GetTensor(out, 0)["tensor_data"]
            assert np.array_equal(got, want), f"ADD into tensor {out}: {int(np.sum(got != want))} elements differ"
