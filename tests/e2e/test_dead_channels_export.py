"""An ap_fixed export removes the quantized graph's dead channels by default: the folder's graph
is smaller, its host C and Cortex-M4 firmware equal the reference of the graph as quantized,
and ``remove_dead_neurons=False`` (``--keep-dead-neurons``) keeps every channel."""

import json
import sys
from pathlib import Path

import numpy as np

from hwprune import reference
from hwprune.ir.io import load_graph
from hwprune.backends.c.options import COptions
from hwprune.pipeline import ExportOptions, write_export
from hwprune.ir.fixed import to_real

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from dead_channel_graphs import fixed_cnn, fixed_inputs  # noqa: E402


def test_export_without_dead_channels_is_bit_exact_on_host_and_m4(tmp_path):
    rng = np.random.default_rng(3)
    graph = fixed_cnn(rng)
    x = to_real(fixed_inputs(graph, rng, 8), graph.input_t)
    out = write_export(graph, tmp_path / "out", x, ExportOptions(target="stm32l4r5"))
    meta = json.loads((out / "export.json").read_text())["dead_channels"]
    report = json.loads((out / "report.json").read_text())
    exported = load_graph(out)
    assert meta["filters_removed"] > 0 and meta["kept"]  # some go, one the padding reads stays
    assert exported.macs == meta["macs_after"] < meta["macs_before"] == graph.macs
    engines = report["engines"]
    assert engines["host"]["bit_exact"] and engines["mcu"]["bit_exact"], engines
    vectors = np.load(out / "vectors.npz")
    assert np.array_equal(vectors["y_int"], reference.run(graph, vectors["x_int"].astype(np.int64)))
    assert "dead channels removed from the quantized graph" in (out / "report.md").read_text()
    kept = write_export(graph, tmp_path / "kept", x, ExportOptions(remove_dead_neurons=False),
                        backends=(COptions(compile=False),))
    assert "dead_channels" not in json.loads((kept / "export.json").read_text())
    assert load_graph(kept).macs == graph.macs
