"""Temporary folders whose path holds a space (a TMPDIR like ``/tmp/my dir``) work everywhere."""

import numpy as np
import pytest

from hwprune import reference
from hwprune.ir.graph import Graph
from hwprune.ir.layers import Dense, ReLU
from hwprune.backends.c.options import COptions
from hwprune.pipeline import ExportOptions, export_model


def _unavailable():
    from hwprune.fpga.synth import unavailable_reason

    return unavailable_reason()


@pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))
def test_synthesis_in_a_folder_with_a_space(tmp_path):
    from hwprune.fpga import da
    from hwprune.fpga.synth import check_netlist, synthesize_logic
    from hwprune.ir.io import load_graph

    rng = np.random.default_rng(0)
    graph = Graph.chain("tiny", (6,), (Dense("fc1", rng.normal(size=(5, 6)), rng.normal(size=5) * 0.1), ReLU("relu1"),
                                 Dense("fc2", rng.normal(size=(3, 5)), np.zeros(3))))
    folder = export_model(graph, tmp_path / "e", rng.normal(size=(48, 6)),
                          ExportOptions(weight_bits=4, activation_bits=4, target="xc7z020"),
                          backends=(COptions(compile=False),))
    graph = load_graph(folder)
    with np.load(folder / "vectors.npz") as vectors:
        x_int = vectors["x_int"]
    trace = reference.run(graph, x_int, trace=True)
    layer = graph.layers[2]
    (in_t,) = graph.input_types(layer)
    logic = da.layer_logic(layer, (5,), in_t)
    workdir = tmp_path / "my tmp dir"  # yosys splits its script's arguments at spaces
    workdir.mkdir()
    netlist = synthesize_logic(logic, layer.name, "xc7", workdir)
    check_netlist(netlist, logic, trace[1][1], in_t, trace[2][1], layer.result_t, "fc2")
