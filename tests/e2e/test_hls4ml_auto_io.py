"""``--io-type auto`` (the hls4ml backend's default): io_stream for a graph whose convolutions
would need a large io_parallel im2col code (``backends/hls4ml/iotype.py``), io_parallel
otherwise. A small residual CNN over the limit (two 3x3 convolutions on 32x32x8, an Add
reading a tensor twice, so hls4ml clones its stream) is exported with no ``--io-type``:
it gets io_stream, recorded in export.json, and its C simulation equals the reference."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from hwprune.backends.hls4ml.iotype import IM2COL_LIMIT, im2col_copies, resolve_io_type  # noqa: E402
from hwprune.hls4ml_options import HlsOptions  # noqa: E402
from hwprune.ir import Add, Conv2D, Dense, GlobalAvgPool2D, Graph, GraphInput, Quantize, ReLU  # noqa: E402
from hwprune.ir.io import save_graph  # noqa: E402
from tests.codegen.codegen_graphs import small_dag  # noqa: E402

SIZE, CHANNELS = 32, 8


def residual(rng, broadcast=False) -> Graph:
    """conv -> relu -> conv, added to the relu's output (a skip; with ``broadcast``, to the
    relu's global average instead, one value per channel), relu, global average, Dense."""
    def conv(name, cin, cout, source):
        return Conv2D(name, rng.normal(size=(cout, 3, 3, cin)) * 0.3, rng.normal(size=cout) * 0.1,
                      padding=((1, 1), (1, 1)), inputs=(source,))

    layers = (conv("c0", CHANNELS, CHANNELS, "input"), ReLU("r0", inputs=("c0",)),
              conv("c1", CHANNELS, CHANNELS, "r0"), GlobalAvgPool2D("g0", inputs=("r0",)),
              Add("add", inputs=("c1", "g0" if broadcast else "r0")),
              ReLU("r1", inputs=("add",)), GlobalAvgPool2D("gap", inputs=("r1",)),
              Dense("fc", rng.normal(size=(4, CHANNELS)) * 0.3, rng.normal(size=4) * 0.1, inputs=("gap",)))
    if not broadcast:
        layers = tuple(layer for layer in layers if layer.name != "g0")
    return Graph("res", (GraphInput("input", (SIZE, SIZE, CHANNELS)),), layers)


def test_auto_streams_large_convolutions_only():
    rng = np.random.default_rng(0)
    small = small_dag(rng)
    # c0: 4x3 positions x 9 taps x 2 channels; c1: 12 x 9 x 3
    assert im2col_copies(small) == 12 * 9 * 2 + 12 * 9 * 3
    assert resolve_io_type(small, HlsOptions()).io_type == "io_parallel"
    big = residual(rng)
    assert im2col_copies(big) == 2 * SIZE * SIZE * 9 * CHANNELS > IM2COL_LIMIT
    assert resolve_io_type(big, HlsOptions()).io_type == "io_stream"
    # the user's choice stays, and io_parallel for a graph hls4ml cannot stream (an Add that
    # broadcasts, a type per element)
    assert resolve_io_type(big, HlsOptions(io_type="parallel")).io_type == "io_parallel"
    assert resolve_io_type(residual(rng, broadcast=True), HlsOptions()).io_type == "io_parallel"
    ones = np.ones((SIZE, SIZE, CHANNELS))  # a type per element (HGQ) on the first convolution's output
    per_element = Quantize("q", widths=8 * ones, int_bits=2 * ones, signed=ones, inputs=("c0",))
    layers = [big.layers[0], per_element, *(dataclasses.replace(layer, inputs=("q",)) if layer.name == "r0"
                                            else layer for layer in big.layers[1:])]
    assert resolve_io_type(Graph("q", big.inputs, tuple(layers)), HlsOptions()).io_type == "io_parallel"


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_a_large_residual_cnn_is_streamed_and_bit_exact_by_default(tmp_path, cli):
    rng = np.random.default_rng(1)
    save_graph(residual(rng), tmp_path / "model")
    np.save(tmp_path / "calibration.npy", rng.normal(size=(16, SIZE, SIZE, CHANNELS)))
    out = tmp_path / "export"
    cli("export", tmp_path / "model", "--calibration", tmp_path / "calibration.npy", "--out", out,
        "--backend", "hls4ml", check_exit=0)
    assert json.loads((out / "export.json").read_text())["hls4ml"]["io_type"] == "io_stream"
    project = json.loads((out / "hls4ml" / "hwprune_hls4ml.json").read_text())
    assert project["options"]["io_type"] == "io_stream"
    assert "clone_r0" in (out / "hls4ml" / "firmware" / "res.cpp").read_text()  # r0 is read twice
    code, stdout, err = cli("verify", out, "--json")
    assert code == 0, err
    engine = json.loads(stdout)["engines"]["hls4ml"]
    assert engine["available"] and engine["bit_exact"] and engine["mismatches"] == 0, engine
