"""DAGs through the integer reference and the host C build: residual Add, Concatenate,
Multiply (a squeeze-excite scale), Clip; the liveness arena against its bounds."""

from __future__ import annotations

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.backends.c.formats import choose_formats
from hwprune.backends.c.plan import plan_model
from hwprune.harness.engines import HostCEngine
from hwprune.ir import (
    Add, Clip, Concatenate, Conv2D, Dense, Flatten, GlobalAvgPool2D, Graph, GraphInput, MaxPool2D, Multiply, ReLU,
)
from hwprune.quant.calibrate import QuantConfig, calibrate, float_forward

ENGINE = HostCEngine(trace=True)


def _conv(name, rng, cin, cout, k, inputs, pad=None):
    p = k // 2 if pad is None else pad
    return Conv2D(name, rng.normal(size=(cout, k, k, cin)) * 0.4, rng.normal(size=cout) * 0.1,
                  padding=((p, p), (p, p)), inputs=inputs)


def residual_graph(rng) -> Graph:
    """conv -> relu -> {conv -> relu6 -> conv, 1x1 shortcut} -> add -> relu -> concat with a
    pooled branch -> squeeze-excite multiply -> pool -> dense."""
    layers = (
        _conv("c0", rng, 3, 4, 3, ("input",)), ReLU("r0", inputs=("c0",)),
        _conv("c1", rng, 4, 6, 3, ("r0",)), Clip("r1", 0.0, 6.0, inputs=("c1",)),
        _conv("c2", rng, 6, 6, 3, ("r1",)), _conv("sc", rng, 4, 6, 1, ("r0",)),
        Add("add", inputs=("c2", "sc")), ReLU("r2", inputs=("add",)),
        MaxPool2D("mp", pool_size=(1, 1), inputs=("r0",)),
        Concatenate("cat", axis=-1, inputs=("r2", "mp")),
        GlobalAvgPool2D("gap", inputs=("cat",)), Dense("se", rng.normal(size=(10, 10)), None, inputs=("gap",)),
        Multiply("scale", inputs=("cat", "se")),
        GlobalAvgPool2D("gap2", inputs=("scale",)), Dense("fc", rng.normal(size=(5, 10)), None, inputs=("gap2",)),
    )
    return Graph("dag", (GraphInput("input", (6, 5, 3)),), layers)


@pytest.mark.parametrize("bits", [8, 16])
def test_dag_reference_equals_host_c(rng, tmp_path, bits):
    graph = residual_graph(rng)
    x = rng.normal(size=(64, 6, 5, 3))
    assert float_forward(graph, x).shape == (64, 5)
    q = calibrate(graph, x, QuantConfig(bits, bits))
    x_int = reference.quantize_input(q, rng.normal(size=(12, 6, 5, 3)))
    export_c(q, tmp_path / "c", "auto")
    run = ENGINE.run(tmp_path / "c", x_int)
    expected = reference.run(q, x_int, trace=True)
    assert [name for name, _ in run.trace] == [layer.name for layer in q.layers]
    for (name, want), (_, got) in zip(expected, run.trace):
        bad = np.argwhere(want.reshape(len(want), -1) != got.reshape(len(got), -1))
        assert not len(bad), f"layer {name!r} vector/element {bad[0]}: reference " \
            f"{want.reshape(len(want), -1)[tuple(bad[0])]}, C {got.reshape(len(got), -1)[tuple(bad[0])]}"
    assert np.array_equal(run.outputs, expected[-1][1])


def test_dag_arena_reuses_dead_tensors_within_its_bounds(rng):
    q = calibrate(residual_graph(rng), rng.normal(size=(32, 6, 5, 3)), QuantConfig(8, 8))
    plan = plan_model(q, choose_formats(q, "auto"))
    assert plan.arena_io_bound <= plan.arena_live_bound <= plan.arena_bytes < plan.arena_never_reuse


def test_dag_is_bit_exact_on_the_cortex_m4_emulator(rng, tmp_path):
    pytest.importorskip("unicorn")
    from hwprune.errors import ToolchainError
    from hwprune.harness import verify
    from hwprune.harness.mcu import McuEngine

    q = calibrate(residual_graph(rng), rng.normal(size=(32, 6, 5, 3)), QuantConfig(8, 8))
    export_c(q, tmp_path / "c", "auto")
    x = reference.quantize_input(q, rng.normal(size=(2, 6, 5, 3)))
    try:
        result = verify(tmp_path / "c", x, [McuEngine(target="stm32l4r5")])
    except ToolchainError as exc:  # no cross compiler on this machine: say so, never pass
        pytest.skip(str(exc))
    comparison = result.comparison("mcu")
    assert comparison.bit_exact, comparison.report()
    assert comparison.layers == tuple(layer.name for layer in q.layers)


@pytest.mark.parametrize("seed", range(6))
def test_chain_arena_is_no_larger_than_the_two_consecutive_tensors_bound(seed):
    """A chain's lower bound is its largest pair of consecutive stored tensors, which is
    what the ping-pong arena of the chain-only planner used: the liveness planner meets it."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 40, size=rng.integers(3, 8))
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [Dense(f"fc{i}", rng.normal(size=(b, a)), None), ReLU(f"r{i}")]
    graph = Graph.chain("chain", (int(sizes[0]),), layers[:-1])
    q = calibrate(graph, rng.normal(size=(16, sizes[0])), QuantConfig(8, 8))
    plan = plan_model(q, choose_formats(q, "dense"), fuse_relu=bool(seed % 2))
    assert plan.arena_bytes == plan.arena_live_bound


def mobilenet_v2_blocks(rng, channels=8, expand=3, blocks=2) -> Graph:
    """MobileNetV2 inverted residuals: 1x1 expand, ReLU6, 3x3 depthwise, ReLU6, 1x1 project,
    Add of the block's input (stride 1, equal channels)."""
    layers = [_conv("stem", rng, 3, channels, 3, ("input",)), Clip("stem6", 0.0, 6.0, inputs=("stem",))]
    x = "stem6"
    for b in range(blocks):
        hidden = channels * expand
        layers += [
            _conv(f"b{b}_expand", rng, channels, hidden, 1, (x,)), Clip(f"b{b}_e6", 0.0, 6.0, inputs=(f"b{b}_expand",)),
            Conv2D(f"b{b}_dw", rng.normal(size=(hidden, 3, 3, 1)) * 0.5, rng.normal(size=hidden) * 0.1,
                   padding=((1, 1), (1, 1)), depthwise=True, inputs=(f"b{b}_e6",)),
            Clip(f"b{b}_d6", 0.0, 6.0, inputs=(f"b{b}_dw",)),
            _conv(f"b{b}_project", rng, hidden, channels, 1, (f"b{b}_d6",)),
            Add(f"b{b}_add", inputs=(x, f"b{b}_project")),
        ]
        x = f"b{b}_add"
    layers += [GlobalAvgPool2D("gap", inputs=(x,)), Dense("fc", rng.normal(size=(4, channels)), None, inputs=("gap",))]
    return Graph("mbv2", (GraphInput("input", (6, 6, 3)),), tuple(layers))


@pytest.mark.parametrize("bits", [8, 16])
def test_mobilenet_v2_blocks_are_bit_exact_on_host_and_m4(rng, tmp_path, bits):
    pytest.importorskip("unicorn")
    from hwprune.errors import ToolchainError
    from hwprune.harness import verify
    from hwprune.harness.mcu import McuEngine

    q = calibrate(mobilenet_v2_blocks(rng), rng.normal(size=(32, 6, 6, 3)), QuantConfig(bits, bits))
    export_c(q, tmp_path / "c", "auto")
    x = reference.quantize_input(q, rng.normal(size=(8, 6, 6, 3)))
    assert np.array_equal(HostCEngine().run(tmp_path / "c", x).outputs, reference.run(q, x))
    try:
        result = verify(tmp_path / "c", x[:2], [McuEngine(target="stm32l4r5")])
    except ToolchainError as exc:
        pytest.skip(str(exc))
    assert result.comparison("mcu").bit_exact, result.comparison("mcu").report()


def test_a_dag_goes_through_export_verify_and_report(rng, tmp_path):
    import json

    from hwprune.harness import verify
    from hwprune.pipeline import ExportOptions, export_model

    x = rng.normal(size=(24, 6, 5, 3))
    out = export_model(residual_graph(rng), tmp_path / "e", x, ExportOptions())
    with np.load(out / "vectors.npz") as vectors:
        x_int = vectors["x_int"][:4]
    result = verify(out / "c", x_int, [ENGINE])
    assert result.comparison("host").bit_exact, result.comparison("host").report()
    rows = {row["name"]: row for row in json.loads((out / "report.json").read_text())["layers"]}
    assert rows["add"]["inputs"] == ["c2", "sc"] and rows["cat"]["inputs"] == ["r2", "mp"]
    manifest = json.loads((out / "c" / "export.json").read_text())
    assert manifest["arena_live_bound_bytes"] <= manifest["arena_bytes"] < manifest["arena_never_reuse_bytes"]
