"""Fuzzing the C backend: hypothesis graphs give host C == reference, bit for bit.

Layer sizes 1 to 64, sparsity 0 to 100 % with all-zero rows, every type width 2 to 16 with
random rounding, overflow and accumulators, weights and inputs at their types' extremes.
Each example is a batch of graphs built into one executable (``multibuild``), so the 200+
graphs cost a dozen compiler runs; on a failure hypothesis shrinks the batch to the
smallest failing graph, which the message prints.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hwprune.ir import Dense, Graph
from hwprune.quant.calibrate import QuantConfig
from hwprune.ir.fixed import to_real
from tests.codegen.codegen_graphs import calibrated_mlp, random_inputs, random_typed_graph
from tests.safety.multibuild import SANITIZE, STRICT, build_and_run, first_difference

GRAPHS_PER_EXAMPLE = 20
EXAMPLES = 11  # 220 graphs
VECTORS = 12
CHECKED: list[int] = []  # graphs per example, filled by the fuzzing test


@st.composite
def graph_specs(draw):
    depth = draw(st.integers(1, 3))
    sizes = tuple(draw(st.lists(st.integers(1, 64), min_size=depth + 1, max_size=depth + 1)))
    sparsity = draw(st.one_of(st.sampled_from([0.0, 0.9, 1.0]), st.floats(0.0, 1.0)))
    low = draw(st.integers(2, 16))
    widths = (low, draw(st.integers(low, 16)))
    zero_rows = draw(st.booleans())
    extremes = draw(st.floats(0.0, 0.5))
    fmt = draw(st.sampled_from(["dense", "csr", "csr8", "auto"]))
    seed = draw(st.integers(0, 2**31 - 1))
    return sizes, sparsity, widths, zero_rows, extremes, fmt, seed


def _saturate(graph: Graph, rng, share: float, zero_rows: bool) -> Graph:
    """Weights pushed to their type's extremes, and (optionally) whole rows of zeros."""
    layers = []
    for layer in graph.layers:
        if isinstance(layer, Dense):
            t = layer.weight_t
            q = np.rint(np.ldexp(layer.weight, t.frac_bits)).astype(np.int64)
            pick = rng.random(q.shape) < share
            q[pick] = np.where(rng.random(q.shape) < 0.5, t.min_int, t.max_int)[pick]
            if zero_rows and q.shape[0] > 1:
                q[rng.random(q.shape[0]) < 0.3] = 0
            layer = layer.with_(weight=to_real(q, t))
        layers.append(layer)
    return graph.with_layers(layers)


def _graph(index: int, spec):
    sizes, sparsity, widths, zero_rows, extremes, fmt, seed = spec
    rng = np.random.default_rng(seed)
    graph = random_typed_graph(f"g{index}", sizes, seed, sparsity=sparsity, width_range=widths)
    return _saturate(graph, rng, extremes, zero_rows), fmt, random_inputs(graph, rng, VECTORS)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(st.lists(graph_specs(), min_size=GRAPHS_PER_EXAMPLE, max_size=GRAPHS_PER_EXAMPLE))
def test_host_c_equals_the_reference(compiler, tmp_path_factory, specs):
    CHECKED.append(len(specs))
    built = [_graph(i, spec) for i, spec in enumerate(specs)]
    graphs, formats, inputs = zip(*built)
    outputs = build_and_run(graphs, inputs, tmp_path_factory.mktemp("fuzz"), formats)
    problems = [first_difference(g, x, y) for g, x, y in zip(graphs, inputs, outputs)]
    problems = [p for p in problems if p]
    assert not problems, "host C differs from the reference:\n" + "\n".join(problems[:1])


def test_the_fuzzing_covered_at_least_200_graphs():
    if not CHECKED:
        pytest.skip("the fuzzing test did not run in this session")
    assert sum(CHECKED) >= 200, CHECKED


@pytest.mark.parametrize("flags", [(*STRICT, "-O1"), (*STRICT, *SANITIZE, "-O1")], ids=["strict", "sanitizers"])
def test_strict_and_sanitizer_builds_over_every_format_and_width(compiler, tmp_path, flags):
    """Every width from 2 to 16, dense and csr, sparse layers with all-zero rows: no
    diagnostic under the strict warnings, no sanitizer report, and equal to the reference."""
    graphs, formats, inputs = [], [], []
    for width in range(2, 17):
        for fmt in ("dense", "csr"):
            rng = np.random.default_rng(width)
            graph, _ = calibrated_mlp(f"w{width}_{fmt}", (9, 17, 5), rng, sparsity=0.6, zero_rows=(0, 3),
                                      config=QuantConfig(width, width))
            graphs.append(graph)
            formats.append(fmt)
            inputs.append(random_inputs(graph, rng, VECTORS))
    if "-fsanitize=address,undefined" in flags:
        probe = tmp_path / "probe.c"
        probe.write_text("int main(void) { return 0; }\n")
        try:
            from hwprune.harness.build import compile_executable

            compile_executable([probe], tmp_path / "probe", flags=SANITIZE)
        except Exception:
            pytest.skip("the compiler has no address/undefined sanitizer runtime here")
    outputs = build_and_run(graphs, inputs, tmp_path / "b", formats, flags)
    problems = [p for p in (first_difference(g, x, y) for g, x, y in zip(graphs, inputs, outputs)) if p]
    assert not problems, "\n".join(problems[:1])
