"""Fuzzing DAGs: hypothesis draws random graphs (branches, residual adds, concatenations,
convs, pooling, clips) and checks host C == Cortex-M4 firmware in the emulator == the
integer reference, bit for bit, on every graph.

Every tensor keeps the input's height and width (convs and pooling with "same" geometry),
so any two tensors can meet in a Concatenate, and an Add whose operands differ in channels
gets a 1x1 conv on its second branch. Graphs share one compiler run per example
on each side: one host executable (``multibuild``) and one M4 firmware holding all 25 models
(``harness.mcu_multi.run_models_on_mcu``, one emulator run), so the 200+ graphs cost a
handful of builds.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hwprune import reference
from hwprune.harness.mcu_multi import run_models_on_mcu
from hwprune.ir import (
    Add, AvgPool2D, Clip, Concatenate, Conv2D, Dense, GlobalAvgPool2D, Graph, GraphInput, MaxPool2D, ReLU,
)
from hwprune.quant.calibrate import QuantConfig, calibrate
from tests.safety.multibuild import STRICT, build_and_run, first_difference

GRAPHS_PER_EXAMPLE = 25
EXAMPLES = 8  # 200 graphs
VECTORS = 6
CHECKED: list[int] = []
ON_M4: list[int] = []
OPS = ("conv3", "conv1", "relu", "clip", "maxpool", "avgpool", "add", "concat")


@st.composite
def dag_specs(draw):
    ops = draw(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 1 << 16), st.integers(0, 1 << 16),
                                  st.integers(1, 4)), min_size=1, max_size=7))
    bits = draw(st.sampled_from([4, 6, 8, 12, 16]))
    h, w, c = draw(st.integers(2, 5)), draw(st.integers(2, 5)), draw(st.integers(1, 3))
    return ops, bits, (h, w, c), draw(st.integers(0, 2**31 - 1))


def _build(index: int, spec):
    ops, bits, shape, seed = spec
    rng = np.random.default_rng(seed)
    tensors = [("input", shape[-1])]  # (name, channels)
    layers = []

    def conv(name, source, cin, cout, k):
        p = k // 2
        layers.append(Conv2D(name, rng.normal(size=(cout, k, k, cin)), rng.normal(size=cout) * 0.2,
                             padding=((p, p), (p, p)), inputs=(source,)))

    for j, (op, a, b, channels) in enumerate(ops):
        name = f"l{j}"
        src, cin = tensors[a % len(tensors)]
        cout = cin
        if op in ("conv3", "conv1"):
            cout = channels
            conv(name, src, cin, cout, 3 if op == "conv3" else 1)
        elif op == "relu":
            layers.append(ReLU(name, inputs=(src,)))
        elif op == "clip":
            layers.append(Clip(name, -0.5, 1.5, inputs=(src,)))
        elif op == "maxpool":
            layers.append(MaxPool2D(name, pool_size=(3, 3), stride=(1, 1), padding=((1, 1), (1, 1)), inputs=(src,)))
        elif op == "avgpool":
            layers.append(AvgPool2D(name, pool_size=(2, 2), stride=(1, 1), padding=((1, 0), (0, 1)), inputs=(src,)))
        else:
            other, c2 = tensors[b % len(tensors)]
            if op == "add" and c2 != cin:
                conv(f"{name}_match", other, c2, cin, 1)
                other = f"{name}_match"
            if op == "add":
                layers.append(Add(name, inputs=(src, other)))
            else:
                layers.append(Concatenate(name, axis=-1, inputs=(src, other)))
                cout = cin + c2
        tensors.append((name, cout))
    last, c = tensors[-1]
    layers.append(GlobalAvgPool2D("gap", inputs=(last,)))
    layers.append(Dense("fc", rng.normal(size=(3, c)), rng.normal(size=3) * 0.1, inputs=("gap",)))
    graph = Graph(f"d{index}", (GraphInput("input", shape),), tuple(layers))
    q = calibrate(graph, rng.normal(size=(32, *shape)) * 1.5, QuantConfig(bits, bits))
    x = reference.quantize_input(q, rng.normal(size=(VECTORS, *shape)) * 2.0)  # past the calibrated range too
    return q, x


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(st.lists(dag_specs(), min_size=GRAPHS_PER_EXAMPLE, max_size=GRAPHS_PER_EXAMPLE))
def test_host_c_equals_the_reference_on_random_dags(compiler, tmp_path_factory, specs):
    CHECKED.append(len(specs))
    graphs, inputs = zip(*(_build(i, spec) for i, spec in enumerate(specs)))
    root = tmp_path_factory.mktemp("dags")
    outputs = build_and_run(graphs, inputs, root, ["auto"] * len(graphs), flags=(*STRICT, "-O1"))
    problems = [p for p in (first_difference(g, x, y) for g, x, y in zip(graphs, inputs, outputs)) if p]
    assert not problems, "host C differs from the reference:\n" + "\n".join(problems[:1])
    m4 = run_models_on_mcu([root / g.name for g in graphs], inputs, target="stm32l4r5")
    ON_M4.append(len(m4))
    problems = [p for p in (first_difference(g, x, y.reshape(len(x), *g.output_shape), "Cortex-M4")
                            for g, x, y in zip(graphs, inputs, m4)) if p]
    assert not problems, "the M4 firmware differs from the reference:\n" + "\n".join(problems[:1])


def test_the_dag_fuzzing_covered_at_least_200_graphs():
    if not CHECKED:
        pytest.skip("the DAG fuzzing test did not run in this session")
    assert sum(CHECKED) >= 200, CHECKED
    assert sum(ON_M4) >= 200, ON_M4
