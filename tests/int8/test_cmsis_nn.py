"""The MLPerf Tiny benchmark's CMSIS-NN side (benchmarks/cmsis_nn.py): AD, the smallest
model, as CMSIS-NN calls on the Cortex-M4 in the emulator equals the int8 reference."""

import numpy as np
import pytest

from benchmarks.cmsis_nn import plan_arena, run_cmsis_nn
from hwprune import reference
from hwprune.errors import ToolchainError
from hwprune.frontends.tflite import read_tflite
from hwprune.harness.mcu import McuEngine


def _unavailable() -> str:
    from benchmarks.cmsis_nn import cmsis_nn_dir

    reason = McuEngine().unavailable_reason()
    if reason:
        return reason
    try:
        cmsis_nn_dir()
    except ToolchainError as exc:
        return str(exc)
    return ""


@pytest.mark.skipif(bool(_unavailable()), reason=_unavailable() or "available")
def test_ad_as_cmsis_nn_calls_equals_the_reference(tmp_path, data_dir):
    graph = read_tflite(data_dir / "ad01_int8.tflite", "ad").graph
    x = np.random.default_rng(3).integers(-128, 128, size=(1, *graph.input_shape))
    run = run_cmsis_nn(graph, x, tmp_path)
    expected = reference.run(graph, x)
    bad = np.argwhere(run.outputs != expected)
    assert bad.size == 0, [(tuple(i), int(run.outputs[tuple(i)]), int(expected[tuple(i)])) for i in bad[:10]]
    assert run.cycles > graph.macs / 4  # at most 4 MACs per cycle on an M4 (two SMLADs are not issued at once)
    # ping-pong: the arena holds two 128-value activations at most (the 640 outputs are the last)
    offsets, arena = plan_arena(graph)
    assert arena == run.arena_bytes == 640 + 128
