"""Hypothesis: random conv and pooling layers, host C == integer reference, bit for bit.

Kernel 1 to 5, stride 1 to 3, every padding (valid, same, any asymmetric pair below the
kernel), 1 to 16 channels, widths 2 to 16, 1-D and 2-D, depthwise, dense, csr and csro
storage (csro where the layer is eligible: not depthwise, at most 254 nonzeros a filter),
calibrated types and random ones (narrow saturating or wrapping accumulators take the
kernels' general path). One example is a batch of models compiled into one program, so a
C build serves many layers.
"""

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.backends.c.formats import FormatNotApplicable, choose_formats
from hwprune.harness.build import compile_executable
from hwprune.ir import AvgPool1D, AvgPool2D, Conv1D, Conv2D, Graph, MaxPool1D, MaxPool2D, ReLU
from hwprune.ir.spatial import window_count
from hwprune.quant.calibrate import QuantConfig, calibrate
from hwprune.ir.fixed import quantize, to_real

from codegen_graphs import random_type

VECTORS = 6


@st.composite
def axis(draw, width_max=16):
    """One spatial axis: (width, kernel, stride, (before, after)) where the window fits."""
    kernel = draw(st.integers(1, 5))
    width = draw(st.integers(2, width_max))
    before = draw(st.integers(0, kernel - 1))
    after = draw(st.integers(0, kernel - 1))
    if width + before + after < kernel:
        after = kernel - width - before  # the smallest padding that fits (< kernel since width >= 1)
    return width, kernel, draw(st.integers(1, 3)), (before, after)


@st.composite
def conv_model(draw, index: int):
    rank = draw(st.sampled_from([1, 2]))
    axes = [draw(axis())]
    if rank == 2:  # 2-D inputs of at most 64 positions keep the example fast
        axes.append(draw(axis(max(2, 64 // axes[0][0]))))
    cin = draw(st.integers(1, 16))
    depthwise = cin > 1 and draw(st.integers(0, 3)) == 0
    cout = cin * draw(st.integers(1, 2)) if depthwise else draw(st.integers(1, 16))
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(index=index, rank=rank, axes=axes, cin=cin, cout=cout, depthwise=depthwise, seed=seed,
                sparsity=draw(st.sampled_from([0.0, 0.5, 0.9])), format=draw(st.sampled_from(["dense", "csr", "csro"])),
                random_types=draw(st.booleans()), relu=draw(st.booleans()),
                pool=draw(st.sampled_from([None, "max", "avg", "avg_count_pad"])))


def build(spec) -> tuple[Graph, np.ndarray]:
    rng = np.random.default_rng(spec["seed"])
    rank, axes = spec["rank"], spec["axes"]
    widths, kernels = tuple(a[0] for a in axes), tuple(a[1] for a in axes)
    cls = Conv1D if rank == 1 else Conv2D
    w_shape = (spec["cout"], *kernels, 1 if spec["depthwise"] else spec["cin"])
    w = rng.normal(size=w_shape) * (rng.random(w_shape) >= spec["sparsity"])
    conv = cls("conv", w / np.sqrt(w[0].size), rng.normal(size=spec["cout"]) * 0.3, stride=tuple(a[2] for a in axes),
               padding=tuple(a[3] for a in axes), depthwise=spec["depthwise"])
    layers = [conv] + ([ReLU("relu")] if spec["relu"] else [])
    name = f"net{spec['index']}"
    out = conv.output_shape((*widths, spec["cin"]))
    if spec["pool"]:
        size = tuple(int(min(n, rng.integers(1, 4))) for n in out[:-1])
        pad = tuple((int(rng.integers(0, k)), int(rng.integers(0, k))) for k in size)
        stride = tuple(int(s) for s in rng.integers(1, 4, size=rank))
        if all(window_count(n, k, s, p) >= 1 for n, k, s, p in zip(out[:-1], size, stride, pad)):
            if spec["pool"] == "max":
                layers.append((MaxPool1D if rank == 1 else MaxPool2D)("pool", pool_size=size, stride=stride, padding=pad))
            else:
                layers.append((AvgPool1D if rank == 1 else AvgPool2D)(
                    "pool", pool_size=size, stride=stride, padding=pad, count_pad=spec["pool"] == "avg_count_pad"))
    graph = Graph.chain(name, (*widths, spec["cin"]), tuple(layers))
    x = rng.normal(size=(32, *graph.input_shape))
    bits = int(rng.integers(3, 9))
    graph = calibrate(graph, x, QuantConfig(bits, bits))
    if spec["random_types"]:
        graph = _random_types(graph, rng)
    return graph, reference.quantize_input(graph, x[:VECTORS])


def _random_types(graph: Graph, rng) -> Graph:
    """Every type drawn at random (accumulators as narrow as 4 bits): the general paths."""
    layers = []
    for layer in graph.layers:
        if layer.kind.startswith("conv"):
            weight_t, bias_t = random_type(rng, (2, 8)), random_type(rng, (4, 16))
            layer = layer.with_(weight=to_real(quantize(layer.weight, weight_t), weight_t),
                                bias=to_real(quantize(layer.bias, bias_t), bias_t), weight_t=weight_t,
                                bias_t=bias_t, accum_t=random_type(rng, (4, 20)), result_t=random_type(rng, (2, 12)))
        elif layer.computes:
            changes = {"result_t": random_type(rng, (2, 12))}
            if hasattr(layer, "accum_t"):
                changes["accum_t"] = random_type(rng, (4, 16))
            layer = layer.with_(**changes)
        layers.append(layer)
    return graph.with_layers(layers, input_t=random_type(rng, (2, 10)))


def _eligible(graph: Graph, fmt: str) -> str:
    """``fmt``, or csr where the conv does not fit it (csro: depthwise, > 254 nonzeros a filter)."""
    try:
        choose_formats(graph, fmt)
    except FormatNotApplicable:
        return "csr"
    return fmt


def run_in_one_program(models, directory: Path) -> list[np.ndarray]:
    """Export every model, compile them with one main(), return each model's C outputs."""
    includes, blocks, sources = [], [], []
    for k, (graph, x_int, fmt) in enumerate(models):
        export_c(graph, directory / f"m{k}", fmt)
        sources.append(directory / f"m{k}" / "model.c")
        n, N = graph.name, graph.name.upper()
        includes.append(f'#include "m{k}/model.h"')
        data = ", ".join(f"INT64_C({int(v)})" for v in x_int.reshape(-1))
        blocks.append(f"""    {{
        static const int64_t data[] = {{{data}}};
        static {n}_input_t x[{N}_INPUT_SIZE];
        static {n}_output_t y[{N}_OUTPUT_SIZE];
        int v, i;
        for (v = 0; v < {len(x_int)}; ++v) {{
            for (i = 0; i < {N}_INPUT_SIZE; ++i) x[i] = ({n}_input_t)data[v * {N}_INPUT_SIZE + i];
            {n}_predict(x, y);
            for (i = 0; i < {N}_OUTPUT_SIZE; ++i) printf("%lld\\n", (long long)y[i]);
        }}
    }}""")
    main = "#include <stdint.h>\n#include <stdio.h>\n" + "\n".join(includes) + "\n\nint main(void)\n{\n"
    main += "\n".join(blocks) + "\n    return 0;\n}\n"
    (directory / "main.c").write_text(main)
    exe = compile_executable([directory / "main.c", *sources], directory / "all", include_dirs=[directory])
    import subprocess

    values = np.array(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split(),
                      dtype=np.int64)
    outputs, start = [], 0
    for graph, x_int, _ in models:
        size = len(x_int) * int(np.prod(graph.output_shape))
        outputs.append(values[start:start + size].reshape(len(x_int), *graph.output_shape))
        start += size
    assert start == len(values)
    return outputs


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_random_conv_layers_host_c_equals_reference(tmp_path_factory, data):
    specs = [data.draw(conv_model(k), label=f"model {k}") for k in range(10)]
    models = []
    for spec in specs:
        graph, x_int = build(spec)
        models.append((graph, x_int, _eligible(graph, spec["format"])))
    outputs = run_in_one_program(models, tmp_path_factory.mktemp("convs"))
    for spec, (graph, x_int, _), got in zip(specs, models, outputs):
        want = reference.run(graph, x_int)
        if not np.array_equal(got, want):
            bad = tuple(int(i) for i in np.argwhere(got != want)[0])
            raise AssertionError(f"{graph.name} {spec} {[l.kind for l in graph.layers]} "
                                 f"{[str(graph.type_of(l.name)) for l in graph]}: output {bad} C {got[bad]} "
                                 f"reference {want[bad]}")
