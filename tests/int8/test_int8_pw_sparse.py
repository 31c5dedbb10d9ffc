"""hwp_pw_sparse_s8 (templates/c/hwprune_int8_simd.h), the sparse pointwise kernel: four
pixels at a time, then two, then one. On the host its C is called directly on awkward
shapes (1..9 pixels, input and output channels 1..9, channels of zeros, a channel with
one nonzero weight, input zero points at both ends), built with the DSP instructions
written in C and plainly; on the Cortex-M4 sparse 1x1 convolutions of 5, 7 and 9 pixels
run as graphs (the backend stores them sparse). Each output equals the reference's,
element by element."""


import numpy as np

from hwprune import reference
from hwprune.backends.c_int8 import layer_kernels
from hwprune.ir.graph import Graph, GraphInput
from hwprune.ir.int8 import Int8Conv2D, int8_types
from hwprune.ir.int8_types import Int8Affine, conv_multipliers, wrap_int32
from tests.int8.conftest import PORTABLE, differences, host_printed, run_on_mcu


def _pointwise(rng, name, pixels_hw, cin, cout, zeros, in_zp):
    w = rng.integers(-127, 128, size=(cout, 1, 1, cin))
    w[rng.random(w.shape) < zeros] = 0
    if cout > 1:
        w[0] = 0  # a channel of zeros: its outputs are the folded bias alone
    if cout > 2:
        w[cout - 1] = 0
        w[cout - 1, 0, 0, cin - 1] = -127  # a channel with one nonzero weight, the last input
    out_t = Int8Affine(0.1, int(rng.integers(-20, 20)))
    scales = rng.uniform(0.001, 0.01, size=cout)
    mult, shift = conv_multipliers(0.05, scales, out_t.scale)
    layer = Int8Conv2D("p", weight=w, bias=rng.integers(-3000, 3000, size=cout), stride=(1, 1),
                       padding=((0, 0), (0, 0)), inputs=("x",), **int8_types(out_t), weight_scale=scales,
                       out_multiplier=mult, out_shift=shift, act_min=-128, act_max=127)
    return Graph(name, (GraphInput("x", (*pixels_hw, cin), Int8Affine(0.05, in_zp)),), (layer,))


def _c_array(ctype, name, values):
    values = [int(v) for v in np.asarray(values).reshape(-1)] or [0]
    return f"static const {ctype} {name}[{len(values)}] = {{{','.join(map(str, values))}}};\n"


def _case(index, graph, x):
    """C running the graph's layer through hwp_pw_sparse_s8 on each vector of ``x`` and printing
    every output (function ``case<index>``), the layer's nonzero weights stored channel by channel."""
    layer = graph.layers[0]
    matrix = layer.filter_matrix.astype(np.int64)
    starts, cols, vals = [0], [], []
    for row in matrix:
        nonzero = np.flatnonzero(row)
        cols.extend(nonzero)
        vals.extend(row[nonzero])
        starts.append(len(cols))
    folded = wrap_int32(np.asarray(layer.bias, dtype=np.int64) - graph.input.t.zero_point * matrix.sum(axis=1))
    pixels, cin = int(np.prod(graph.input_shape[:-1])), graph.input_shape[-1]
    cout, out_t, p = matrix.shape[0], layer.result_t, f"c{index}_"
    return (_c_array("uint32_t", f"{p}start", starts) + _c_array("uint16_t", f"{p}cols", cols)
            + _c_array("int8_t", f"{p}vals", vals) + _c_array("int32_t", f"{p}folded", folded)
            + _c_array("int32_t", f"{p}mult", layer.out_multiplier) + _c_array("int32_t", f"{p}shift", layer.out_shift)
            + _c_array("int8_t", f"{p}x", x) +
            f"static void case{index}(void) {{\n    static int8_t y[{pixels * cout}];\n"
            f"    for (int v = 0; v < {len(x)}; v++) {{\n"
            f"        hwp_pw_sparse_s8({p}x + v * {pixels * cin}, y, {pixels}, {cin}, {cout}, {p}start, {p}cols, "
            f"{p}vals, {p}folded, {p}mult, {p}shift, {out_t.zero_point}, {layer.act_min}, {layer.act_max});\n"
            f"        for (int k = 0; k < {pixels * cout}; k++) printf(\"%d\\n\", y[k]);\n    }}\n}}\n")


def _host_graphs():
    rng = np.random.default_rng(41)
    graphs = []
    for pixels in range(1, 10):
        for cin, cout in ((pixels, 10 - pixels), (10 - pixels, pixels), (1 + pixels % 3, 9)):
            in_zp = (-128, 127, int(rng.integers(-9, 9)))[len(graphs) % 3]
            graphs.append(_pointwise(rng, f"pw{len(graphs)}_p{pixels}_{cin}x{cout}", (1, pixels), cin, cout, 0.5,
                                     in_zp))
    return graphs


def test_kernel_on_host_equals_reference_on_awkward_shapes(tmp_path):
    graphs = _host_graphs()
    inputs, wants, cases = [], [], []
    for index, graph in enumerate(graphs):
        x = np.random.default_rng(index).integers(-128, 128, size=(3, *graph.input_shape))
        x[0], x[1] = -128, 127
        wants.append(reference.run(graph, x).reshape(len(x), -1))
        cases.append(_case(index, graph, x))
    source = tmp_path / "pw_sparse.c"
    source.write_text('#include <stdio.h>\n#include "hwprune_int8.h"\n' + "".join(cases) + "int main(void) {\n"
                      + "".join(f"    case{i}();\n" for i in range(len(graphs))) + "    return 0;\n}\n")
    for defines in (PORTABLE, ()):
        out = host_printed(source, defines, timeout=300)
        assert out.size == sum(w.size for w in wants), f"{defines}: {out.size} outputs printed"
        offset = 0
        for graph, want in zip(graphs, wants):
            got = out[offset:offset + want.size].reshape(want.shape)
            offset += want.size
            assert np.array_equal(got, want), differences(f"{graph.name} {defines}", got, want)


def test_firmware_sparse_pointwise_equals_reference(tmp_path):
    rng = np.random.default_rng(42)
    for hw, cin, cout in (((1, 5), 40, 7), ((3, 3), 48, 9), ((1, 7), 41, 3)):
        graph = _pointwise(rng, f"pwm{hw[0] * hw[1]}", hw, cin, cout, 0.95, int(rng.integers(-9, 9)))
        assert layer_kernels(graph) == ["hwp_pw_sparse_s8"]
        x = np.random.default_rng(9).integers(-128, 128, size=(3, *graph.input_shape))
        run = run_on_mcu(graph, x, tmp_path / graph.name)
        want = reference.run(graph, x)
        assert np.array_equal(run.outputs, want), differences(graph.name, run.outputs, want)
