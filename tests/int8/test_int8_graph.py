"""Int8 graphs with branches: a small residual network built in the IR (two ADDs, one of which
keeps a tensor alive across a convolution) through the reference, ir.io, the host C and the
Cortex-M4 firmware. TFLM as the oracle of ADD: test_tflite_models (ResNet-8) and
test_int8_arithmetic."""

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c_int8 import write_int8_c
from hwprune.backends.c_int8_plan import plan_int8, stored_dense
from hwprune.harness.host_int8 import run_host
from hwprune.errors import ModelError, ShapeError
from hwprune.harness.compare import compare
from hwprune.ir.graph import Graph, GraphInput
from hwprune.ir.int8 import Int8Add, Int8Conv2D, int8_types
from hwprune.ir.io import load_graph, save_graph
from hwprune.ir.int8_types import Int8Affine, activation_range, add_int8, add_params, conv_multipliers
from tests.int8.conftest import run_on_mcu

IN_T = Int8Affine(0.05, -3)


def _conv(rng, name: str, source: str, in_t: Int8Affine, out_t: Int8Affine, zeros: float = 0.0) -> Int8Conv2D:
    """A 3x3 convolution of 3 channels, ``zeros`` of its weights zero (above 90 %: stored sparse)."""
    channels = 3
    w = rng.integers(-127, 128, size=(channels, 3, 3, channels))
    w[rng.random(w.shape) < zeros] = 0
    scales = np.full(channels, 0.004)
    mult, shift = conv_multipliers(in_t.scale, scales, out_t.scale)
    lo, hi = activation_range("relu", out_t)
    return Int8Conv2D(name, weight=w, bias=rng.integers(-500, 500, size=channels), stride=(1, 1),
                      padding=((1, 1), (1, 1)), **int8_types(out_t), weight_scale=scales, out_multiplier=mult,
                      out_shift=shift, act_min=lo, act_max=hi, inputs=(source,))


def _residual(rng, shape=(6, 5, 3)) -> Graph:
    c1_t, a1_t, c2_t, a2_t = Int8Affine(0.1, 5), Int8Affine(0.07, -10), Int8Affine(0.03, -128), Int8Affine(0.12, 2)
    layers = (
        _conv(rng, "c1", "x", IN_T, c1_t),
        Int8Add.from_params("a1", add_params(IN_T, c1_t, a1_t, "relu"), a1_t, inputs=("x", "c1")),
        _conv(rng, "c2", "a1", a1_t, c2_t, zeros=0.95),
        Int8Add.from_params("a2", add_params(c2_t, c1_t, a2_t), a2_t, inputs=("c2", "c1")),
    )
    return Graph("residual", (GraphInput("x", shape, IN_T),), layers)


def _inputs(graph, n=16):
    x = np.random.default_rng(4).integers(-128, 128, size=(n, *graph.input_shape))
    x[0], x[1] = -128, 127
    return x


def test_add_kernel_is_add_int8_with_the_operands_zero_points():
    graph = _residual(np.random.default_rng(0))
    x = _inputs(graph)
    trace = dict(reference.run(graph, x, trace=True))
    a2 = graph.layer("a2")
    want = add_int8(trace["c2"], trace["c1"], add_params(Int8Affine(0.03, -128), Int8Affine(0.1, 5), a2.result_t))
    assert np.array_equal(trace["a2"], want)
    assert graph.type_of("a2") == a2.result_t and graph.input_types(a2) == (Int8Affine(0.03, -128), Int8Affine(0.1, 5))


def test_residual_graph_round_trips_and_host_c_equals_reference(tmp_path):
    graph = _residual(np.random.default_rng(1))
    save_graph(graph, tmp_path / "g")
    back = load_graph(tmp_path / "g")
    assert back.layer("a2").inputs == ("c2", "c1") and back.layer("a1").out_multiplier == graph.layer("a1").out_multiplier
    x = _inputs(back)
    assert [stored_dense(layer) for layer in back.weighted_layers()] == [True, False]  # both C kernels run
    write_int8_c(back, tmp_path / "c")
    result = compare(reference.run(graph, x, trace=True), run_host(back, tmp_path / "c", x, tmp_path), "host")
    assert result.bit_exact, result.report()
    assert len(result.layers) == 4
    # c1 is read by a1 and a2, so it shares no bytes with a1 or c2: three tensors of 90 bytes (96 aligned) live at once
    plan = plan_int8(graph)
    assert plan.live_bound == 3 * 96 and plan.nbytes == plan.live_bound


def test_add_refuses_operands_of_two_shapes():
    rng = np.random.default_rng(2)
    c1 = _conv(rng, "c1", "x", IN_T, Int8Affine(0.1, 5))
    add = Int8Add.from_params("a", add_params(IN_T, IN_T, IN_T), IN_T, inputs=("x", "y"))
    with pytest.raises(ShapeError, match=r"layer 'a': int8 ADD operands 'x' \(6, 5, 3\) and 'y' \(6, 5, 1\) must "
                                         r"have one shape"):
        Graph("g", (GraphInput("x", (6, 5, 3), IN_T), GraphInput("y", (6, 5, 1), IN_T)), (c1, add))
    with pytest.raises(ShapeError, match=r"layer 'a': in1 multiplier -1 \(Q31\) and shift 0"):
        Int8Add("a", result_t=IN_T, in1_multiplier=-1, inputs=("x", "y"))
    with pytest.raises(ModelError, match=r"reads 2 inputs, it names 1"):
        Graph("g", (GraphInput("x", (6, 5, 3), IN_T),), (add.with_(inputs=("x",)),))


def test_large_adds_read_operand_tables_and_equal_the_reference(tmp_path):
    """ADDs of at least ADD_TABLE_FROM values read each operand's scaled value from a table
    (hwp_add_lut_s8); the small graph above keeps the multiplying kernel (hwp_add_s8)."""
    from hwprune.backends.c_int8 import ADD_TABLE_FROM

    graph = _residual(np.random.default_rng(6), (24, 16, 3))
    assert 24 * 16 * 3 >= ADD_TABLE_FROM > 6 * 5 * 3
    x = _inputs(graph, 6)
    write_int8_c(graph, tmp_path / "c")
    source = (tmp_path / "c" / "model_int8.c").read_text()
    assert source.count("hwp_add_lut_s8(") == 2 and "hwp_add_s8(" not in source
    result = compare(reference.run(graph, x, trace=True), run_host(graph, tmp_path / "c", x, tmp_path), "host")
    assert result.bit_exact, result.report()


@pytest.mark.parametrize("shape", [(6, 5, 3), (24, 16, 3)])
def test_cortex_m4_firmware_runs_the_residual_graph(tmp_path, shape):
    graph = _residual(np.random.default_rng(3), shape)
    x = _inputs(graph, 3)
    run = run_on_mcu(graph, x, tmp_path)
    assert np.array_equal(run.outputs, reference.run(graph, x))
    assert run.static_ram_bytes >= plan_int8(graph).nbytes
