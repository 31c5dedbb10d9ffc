"""Layers of 1 to 5 rows or filters in every storage format and kernel, built with
``-Wall -Wextra -Werror`` for the host and for Cortex-M0+, M4 (DSP: SMLAD paths) and M7,
and bit-exact in the emulator.

Few filters are where the blocked kernels take their remainder paths only (fewer than four
rows: no block of four at all), which once left an unused variable in a Cortex-M build. One
graph per kernel family carries every (format, size) pair as a layer of its own, so a core
costs one cross build per family.
"""

from __future__ import annotations

import numpy as np
import pytest

from hwprune.backends.c import export_c
from hwprune.backends.c.formats import FORMATS, choose_formats, formats_for
from hwprune.backends.c.plan import plan_model
from hwprune.harness import verify
from hwprune.harness.mcu import McuEngine
from hwprune.ir import Conv1D, Conv2D, Dense, Flatten, Graph, ReLU
from hwprune.quant.calibrate import QuantConfig, calibrate

from codegen_graphs import random_inputs
from test_kernels import TARGETS, nm_mask
from tests.safety.multibuild import build_and_run, first_difference

SIZES = (1, 2, 3, 4, 5)
CORES = ("m0plus", "m4", "m7")


def _weights(rng, shape, fmt: str) -> np.ndarray:
    w = rng.normal(size=shape) / np.sqrt(np.prod(shape[1:]))
    flat = w.reshape(shape[0], -1)
    if fmt == "nm":
        flat *= nm_mask(rng, flat.shape, 1, 4)
    elif fmt != "dense":
        keep = rng.random(flat.shape) > 0.4
        keep[np.arange(shape[0]), rng.integers(flat.shape[1], size=shape[0])] = True  # no empty row
        flat *= keep
    return flat.reshape(shape)


def dense_graph(seed: int = 0):
    """Dense layers of 1..5 rows in every Dense format, ReLU after every other one (its
    unsigned outputs take the UXTB16 path, the others SXTB16)."""
    rng = np.random.default_rng(seed)
    probe = Dense("probe", np.ones((1, 1)), np.zeros(1))
    layers, formats, n_in = [], {}, 7
    for fmt in formats_for(probe):
        for rows in SIZES:
            name = f"fc_{fmt}_{rows}"
            layers.append(Dense(name, _weights(rng, (rows, n_in), fmt), rng.normal(size=rows) * 0.3))
            formats[name] = fmt
            if len(layers) % 3 == 1:
                layers.append(ReLU(f"relu_{fmt}_{rows}"))
            n_in = rows
    graph = Graph.chain("small_dense", (7,), tuple(layers))
    return calibrate(graph, rng.normal(size=(64, 7)), QuantConfig(8, 8)), formats


def conv_graph(rank: int, seed: int = 0):
    """Conv layers of 1..5 filters in every conv format, 'same' padding so the positions
    stay; a row of the 2-D kernel spans 3 positions of 1..5 channels, so the SIMD path
    meets segments of 3 (scalar only) to 15 inputs."""
    rng = np.random.default_rng(seed)
    cls = Conv1D if rank == 1 else Conv2D
    kernel = (3,) * rank
    probe = cls("probe", np.ones((1, *kernel, 1)), np.zeros(1))
    spatial = (6,) * rank
    layers, formats, cin = [], {}, 2
    for fmt in formats_for(probe):
        for filters in SIZES:
            name = f"conv_{fmt}_{filters}"
            layers.append(cls(name, _weights(rng, (filters, *kernel, cin), fmt), rng.normal(size=filters) * 0.3,
                              padding=((1, 1),) * rank))
            formats[name] = fmt
            if len(layers) % 3 == 1:
                layers.append(ReLU(f"relu_{fmt}_{filters}"))
            cin = filters
    layers += [Flatten("flatten"), Dense("fc", rng.normal(size=(3, int(np.prod(spatial)) * cin)) * 0.1,
                                        rng.normal(size=3) * 0.3)]
    formats["fc"] = "dense"
    graph = Graph.chain(f"small_conv{rank}d", (*spatial, 2), tuple(layers))
    return calibrate(graph, rng.normal(size=(64, *spatial, 2)), QuantConfig(8, 8)), formats


GRAPHS = {"dense": dense_graph, "conv1d": lambda: conv_graph(1), "conv2d": lambda: conv_graph(2)}


def test_every_format_with_a_kernel_appears_at_every_size():
    """The graphs cover the registry as it stands: a new format joins them by itself."""
    for graph_formats, kind in ((dense_graph()[1], "fc"), (conv_graph(2)[1], "conv")):
        used = {(f, int(n.rsplit("_", 1)[1])) for n, f in graph_formats.items() if n.startswith(kind + "_")}
        assert used == {(f, size) for f in {f for f, _ in used} for size in SIZES}
    assert {f for f, _ in used} >= {"dense", "csr", "csro"}
    assert {f for f in dense_graph()[1].values()} == {f for f in FORMATS if f != "csro"}


def test_every_small_layer_builds_strict_and_bit_exact_on_the_host(tmp_path):
    graphs, formats = zip(*(make() for make in GRAPHS.values()))
    rng = np.random.default_rng(1)
    inputs = [random_inputs(g, rng, 8) for g in graphs]
    outputs = build_and_run(graphs, inputs, tmp_path, formats)
    for graph, x, got in zip(graphs, inputs, outputs):
        assert not first_difference(graph, x, got), first_difference(graph, x, got)


@pytest.mark.parametrize("core", CORES)
@pytest.mark.parametrize("family", list(GRAPHS))
def test_every_small_layer_is_bit_exact_on_cortex_m(core, family, tmp_path):
    """The cross build is -Wall -Wextra -Werror (cross.link_firmware): a warning fails here."""
    graph, formats = GRAPHS[family]()
    export_c(graph, tmp_path, formats)
    plan = plan_model(graph, choose_formats(graph, formats))
    assert all(s.arithmetic.fast and s.arithmetic.acc_bits == 32 for s in plan.steps if s.storage is not None)
    if core == "m4" and family != "conv1d":
        assert "__smlad" in (tmp_path / "model.c").read_text()
    result = verify(tmp_path, random_inputs(graph, np.random.default_rng(2), 6), [McuEngine(target=TARGETS[core])])
    assert result.comparison("mcu").bit_exact, result.comparison("mcu").report()
