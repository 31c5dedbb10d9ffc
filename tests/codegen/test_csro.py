"""csro (offset csr for convs): the offsets and their decoding, which layers are eligible,
bit-exact on the host (strict warnings, traced layer by layer) and on Cortex-M0+, M4
(SMLAD path) and M7 in the emulator, padded, strided, valid and 1-D, on the fast and the
general arithmetic path, and fewer cycles than dense and csr at 90 % on the M4."""

from __future__ import annotations

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.backends.c.formats import FormatNotApplicable, candidates, choose_formats, decode_weights, encode
from hwprune.backends.c.plan import plan_model
from hwprune.errors import OptionError
from hwprune.harness import verify
from hwprune.harness.engines import HostCEngine
from hwprune.harness.mcu import McuEngine
from hwprune.ir import Conv1D, Conv2D, Dense, Flatten, Graph, MaxPool2D, ReLU
from hwprune.quant.calibrate import QuantConfig, calibrate
from hwprune.reference import dense_integers

from codegen_graphs import calibrated_mlp
from test_conv_random import _random_types
from test_export_c import assert_bit_exact
from test_firmware_helpers import STRICT

TARGETS = {"m0plus": "mspm0g3507", "m4": "stm32l4r5", "m7": "pic32czca90"}
STRICT_ENGINE = HostCEngine(flags=(*STRICT, "-pedantic"))


def _filters(rng, shape, sparsity):
    w = rng.normal(size=shape) / np.sqrt(np.prod(shape[1:]))
    w[rng.random(shape) < sparsity] = 0.0
    return w


def cnn(seed=0, sparsity=0.6, random_types=False) -> tuple[Graph, np.ndarray]:
    """Padded (same), strided with asymmetric padding, valid: every filter count remainder."""
    rng = np.random.default_rng(seed)
    layers = (
        Conv2D("same", _filters(rng, (8, 3, 3, 3), sparsity), rng.normal(size=8) * 0.3, padding=((1, 1), (1, 1))),
        ReLU("relu1"),
        Conv2D("strided", _filters(rng, (7, 3, 2, 8), sparsity), rng.normal(size=7) * 0.3, stride=(2, 1),
               padding=((0, 2), (1, 0))),
        Conv2D("valid", _filters(rng, (6, 2, 3, 7), sparsity), rng.normal(size=6) * 0.3),
        MaxPool2D("pool", pool_size=(2, 2)),
        Flatten("flatten"),
        Dense("fc", rng.normal(size=(5, 18)) * 0.3,
              rng.normal(size=5) * 0.3),
    )
    graph = Graph.chain("csro_cnn", (7, 9, 3), layers)
    x = rng.normal(size=(32, 7, 9, 3))
    graph = calibrate(graph, x, QuantConfig(8, 8))
    if random_types:
        graph = _random_types(graph, rng)
    return graph, reference.quantize_input(graph, x[:6])


def conv1d(seed=1) -> tuple[Graph, np.ndarray]:
    rng = np.random.default_rng(seed)
    layers = (Conv1D("c1", _filters(rng, (5, 4, 6), 0.5), rng.normal(size=5) * 0.3, stride=(2,), padding=((2, 1),)),
              ReLU("r1"),
              Conv1D("c2", _filters(rng, (3, 3, 5), 0.5), rng.normal(size=3) * 0.3))
    graph = calibrate(Graph.chain("csro_1d", (17, 6), layers), rng.normal(size=(32, 17, 6)), QuantConfig(8, 8))
    return graph, reference.quantize_input(graph, rng.normal(size=(6, 17, 6)))


def _formats(graph):
    """csro for every conv, dense for the Dense layer (csro has no Dense kernel)."""
    return {"*": "csro", **{l.name: "dense" for l in graph.weighted_layers() if l.kind == "dense"}}


def test_offsets_point_into_the_padded_window_and_decode_back():
    graph, _ = cnn()
    storages = {s.name: s for s in choose_formats(graph, _formats(graph))}
    same = storages["same"]
    assert same.param == {"row": 11 * 3, "cin": 3, "k_w": 3}  # 9 wide, one column of padding each side
    w, _ = dense_integers(graph.layers[0])
    rows, cols = np.nonzero(w)
    kh, kw, c = cols // 9, cols // 3 % 3, cols % 3
    assert same.array("offsets").data.tolist() == ((kh * 11 + kw) * 3 + c).tolist()
    assert same.array("counts").data.tolist() == [*np.count_nonzero(w, axis=1), 255]
    assert same.array("offsets").c_type == "uint8_t"
    for layer in graph.weighted_layers():
        assert np.array_equal(decode_weights(storages[layer.name]), dense_integers(layer)[0])
    # An input 200 wide: offsets past 255 take uint16.
    wide = encode(graph.layers[0], "csro", (7, 200, 3))
    assert wide.array("offsets").c_type == "uint16_t"
    assert np.array_equal(decode_weights(wide), w)


def test_dense_depthwise_and_shapeless_layers_are_not_eligible(rng):
    mlp, _ = calibrated_mlp("mlp", [6, 4], rng)
    with pytest.raises(OptionError, match="'csro' has no dense kernel"):
        choose_formats(mlp, "csro")
    assert "csro" not in {s.format for s in candidates(mlp.weighted_layers()[0])}
    depthwise = Conv2D("dw", rng.normal(size=(4, 3, 3, 1)), np.zeros(4), depthwise=True)
    dw = calibrate(Graph.chain("dw", (5, 5, 4), (depthwise,)), rng.normal(size=(8, 5, 5, 4)), QuantConfig(8, 8))
    with pytest.raises(FormatNotApplicable, match="depthwise"):
        choose_formats(dw, "csro")
    graph, _ = cnn()
    with pytest.raises(FormatNotApplicable, match="input shape"):
        encode(graph.layers[0], "csro")  # the offsets need the input's width
    assert "csro" in {s.format for s in candidates(graph.layers[0], (7, 9, 3))}


@pytest.mark.parametrize("fmt", ["csro", "dense"])  # dense: the padded dense conv kernel
@pytest.mark.parametrize("case", ["calibrated", "random_types_4", "random_types_6", "random_types_14", "1d"])
def test_bit_exact_on_the_host_with_strict_warnings(case, fmt, tmp_path):
    seed = int(case.rsplit("_", 1)[1]) if case.startswith("random") else 3
    graph, x = conv1d() if case == "1d" else cnn(seed=seed, random_types=case.startswith("random"))
    formats = _formats(graph) if fmt == "csro" else "dense"
    plan = plan_model(graph, choose_formats(graph, formats))
    fast = {s.layer.name: s.arithmetic.fast for s in plan.steps if s.storage is not None}
    if case == "calibrated":
        assert all(fast.values())
    export_c(graph, tmp_path, formats)
    run = STRICT_ENGINE.run(tmp_path, x)
    assert np.array_equal(run.outputs, reference.run(graph, x))
    assert_bit_exact(graph, x, tmp_path / "traced", formats)  # layer by layer


def test_random_types_take_the_general_path_with_wider_inputs():
    graph, _ = cnn(seed=4, random_types=True)
    plan = plan_model(graph, choose_formats(graph, _formats(graph)))
    convs = [s for s in plan.steps if s.layer.kind == "conv2d"]
    assert {s.arithmetic.fast for s in convs} == {True, False}
    assert "uint16_t" in {s.source.c_type for s in convs}


@pytest.mark.parametrize("core", sorted(TARGETS))
def test_bit_exact_on_cortex_m(core, tmp_path):
    graph, x = cnn()
    export_c(graph, tmp_path / "cnn", _formats(graph))
    export_c(graph, tmp_path / "dense", "dense")  # the padded dense conv kernel, SMLAD on the M4 and M7
    result = verify(tmp_path / "dense", x, [McuEngine(target=TARGETS[core])])
    assert result.comparison("mcu").bit_exact, result.comparison("mcu").report()
    if core == "m4":
        assert "__smlad" in (tmp_path / "cnn" / "model.c").read_text()
    for directory, (g, xs) in ((tmp_path / "cnn", (graph, x)), (tmp_path / "1d", conv1d())):
        if g is not graph:
            export_c(g, directory, _formats(g))
        result = verify(directory, xs, [McuEngine(target=TARGETS[core])])
        assert result.comparison("mcu").bit_exact, result.comparison("mcu").report()


def test_general_path_is_bit_exact_on_the_m4(tmp_path):
    graph, x = cnn(seed=4, random_types=True)
    export_c(graph, tmp_path, _formats(graph))
    result = verify(tmp_path, x, [McuEngine(target=TARGETS["m4"])])
    assert result.comparison("mcu").bit_exact, result.comparison("mcu").report()


def test_fewer_cycles_than_dense_and_csr_at_90_percent_on_the_m4(tmp_path):
    graph, x = cnn(sparsity=0.9)
    cycles = {}
    for fmt in ("dense", "csr", "csro"):
        engine = McuEngine(target=TARGETS["m4"])
        spec = {"*": fmt, "fc": "dense"}
        export_c(graph, tmp_path / fmt, spec)
        assert verify(tmp_path / fmt, x[:2], [engine]).bit_exact
        cycles[fmt] = sum(l.cycles for l in engine.last_measurement.layers if l.name in ("same", "strided", "valid"))
    assert cycles["csro"] < 0.5 * cycles["dense"], cycles
    assert cycles["csro"] < 0.5 * cycles["csr"], cycles


@pytest.mark.parametrize("core", ["cortex-m0plus", "cortex-m4", "cortex-m7"])
def test_optimize_speed_picks_csro_for_sparse_convs_by_the_cost_model(core):
    from hwprune.backends.c import cost

    sparse, _ = cnn(sparsity=0.9)
    chosen = {s.name: s for s in choose_formats(sparse, "auto", "speed", core)}
    assert {chosen[n].format for n in ("same", "strided", "valid")} == {"csro"}
    assert chosen["same"].positions == 7 * 9 and chosen["same"].family == "conv"
    full, _ = cnn(sparsity=0.0)
    chosen = {s.name: s for s in choose_formats(full, "auto", "speed", core)}
    assert chosen["same"].format == "dense"
    # Conv costs scale with the output positions; a Dense layer's do not.
    assert cost.instructions(chosen["same"], core) > 63 * cost.instructions(encode(full.layers[0], "dense"), core) * 0.99


def test_measured_speeds_include_csro(rng):
    from hwprune.harness.format_speed import measure_formats
    from hwprune.targets import get_target

    graph, x = cnn(sparsity=0.9)
    cycles = measure_formats(graph, get_target("stm32l4r5"), x[:2], formats=("dense", "csro"))
    convs = ("same", "strided", "valid")
    assert set(cycles) == {(l, f) for l in convs for f in ("dense", "csro")} | {("fc", "dense")}
    chosen = {s.name: s.format for s in choose_formats(graph, "auto", "speed", "cortex-m4", measured=cycles)}
    for n in convs:  # the fastest as measured (the first conv's 27-entry filters are cheap dense)
        assert cycles[(n, chosen[n])] == min(cycles[(n, f)] for f in ("dense", "csro")), (chosen, cycles)
    assert chosen["strided"] == chosen["valid"] == "csro", (chosen, cycles)


@pytest.mark.parametrize("formats", ["csro", "dense", "csr"])
def test_static_bytes_count_every_padded_copy_the_c_declares(formats, tmp_path):
    """model.h's STATIC_BYTES is the arena plus the padded input copies that model.c
    declares (their sizes read from the C source, not from the planner)."""
    import re

    graph, _ = cnn()
    policy = {"*": "dense", **{l.name: formats for l in graph.weighted_layers() if l.kind == "conv2d"}}
    export_c(graph, tmp_path, policy)
    header, source = (tmp_path / "model.h").read_text(), (tmp_path / "model.c").read_text()
    macro = {m[0]: int(m[1]) for m in re.findall(r"#define \w+_(ARENA_BYTES|STATIC_BYTES) (\d+)", header)}
    sizes = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4}
    copies = [sizes[t] * int(n) for t, n in re.findall(r"static (u?int\d+_t) \w+_padded\[(\d+)\];", source)]
    assert (len(copies) > 0) == (formats != "csr")  # csr checks every tap, keeps no copy
    assert macro["STATIC_BYTES"] == macro["ARENA_BYTES"] + sum(copies)
