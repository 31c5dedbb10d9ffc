"""The activations against hls4ml itself.

1. Every value of an input type through hls4ml 1.3.0's own ``nnet_activation.h`` functions
   (``sigmoid``, ``tanh``, ``selu``, ``leaky_relu``, ``prelu``, ``hard_sigmoid``), compiled with g++
   and its ap_types, equals the integer reference element for element; a fine ``table_t``
   (23 fraction bits) makes the table's float32 ``expf``/``tanhf`` count bit by bit.
2. One model with sigmoid, tanh, leaky ReLU, PReLU, hard sigmoid, selu and a BatchNorm after an
   activation (hls4ml's ``normalize``), two results rounding half to even (``AP_RND_CONV``),
   exported with the hls4ml backend: its C simulation equals the reference on every vector.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hwprune.ir import BatchNorm, Dense, Graph, HardSigmoid, LeakyReLU, Selu, Sigmoid, Tanh
from hwprune.quant.calibrate import calibrate
from hwprune.quant.calibrate_activations import MAX_TABLE_SIZE
from hwprune.ir.fixed import Fixed, Rounding
from hwprune.reference import KERNELS

hls4ml = pytest.importorskip("hls4ml")
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not on PATH (apt-get install g++)")

IN_T = Fixed(11, 5)  # every one of its 2048 values, [-16, 16): past both ends of the tables
ALPHA = (0.25, -0.125, 0.6875, 0.0078125)  # PReLU slopes, one per channel of 4


def _layers():
    out = Fixed(12, 3, rounding="RND", overflow="SAT")
    fine = Fixed(24, 1)  # the table entries themselves, to 23 fraction bits
    return {
        "sigmoid": Sigmoid("s", table_size=1024, table_t=Fixed(18, 8), result_t=Fixed(8, 0, False, "RND", "SAT")),
        "sigmoid_fine": Sigmoid("s", table_size=1024, table_t=fine, result_t=fine),
        "tanh": Tanh("t", table_size=512, table_t=Fixed(12, 1), result_t=out),
        "tanh_fine": Tanh("t", table_size=2048, table_t=fine, result_t=fine),
        # calibration's largest tables (quant.calibrate_activations.MAX_TABLE_SIZE)
        "sigmoid_max": Sigmoid("s", table_size=MAX_TABLE_SIZE, table_t=fine, result_t=fine),
        "tanh_max": Tanh("t", table_size=MAX_TABLE_SIZE, table_t=fine, result_t=fine),
        "leaky": LeakyReLU("l", alpha=np.array([0.30078125]), param_t=Fixed(16, 0, rounding="RND", overflow="SAT"),
                           result_t=out),
        "prelu": LeakyReLU("p", alpha=np.array(ALPHA), param_t=Fixed(10, 1), result_t=Fixed(10, 4)),
        "selu": Selu("u", table_size=1024, table_t=Fixed(12, 2), result_t=Fixed(12, 5, rounding="RND", overflow="SAT")),
        # 22 fraction bits in the table and the result: every entry and product (21 bits) counts bit by bit
        "selu_fine": Selu("u", table_size=512, table_t=Fixed(24, 2), result_t=Fixed(28, 6)),
        "selu_max": Selu("u", table_size=MAX_TABLE_SIZE, table_t=Fixed(24, 2), result_t=Fixed(28, 6)),
        "hard": HardSigmoid("h", slope=1 / 6, shift=0.5, slope_t=Fixed(16, 0, False), shift_t=Fixed(2, 0, False),
                            result_t=Fixed(9, 1, False, "RND", "SAT")),
    }


def _program(layers) -> str:
    n = 1 << IN_T.width
    lines = ['#include <cstdio>', '#include "nnet_utils/nnet_activation.h"', f"typedef {IN_T.hls()} in_t;",
             f"static const unsigned N = {n};"]
    calls = []
    for key, layer in layers.items():
        lines.append(f"typedef {layer.result_t.hls()} {key}_out_t;")
        if layer.kind in ("sigmoid", "tanh", "selu"):
            lines.append(f"struct {key}_cfg : nnet::activ_config {{ static const unsigned n_in = N; "
                         f"static const unsigned table_size = {layer.table_size}; "
                         f"typedef {layer.table_t.hls()} table_t; }};")
            calls.append(f"nnet::{layer.kind}<in_t, {key}_out_t, {key}_cfg>(x, {key}_y);")
        elif layer.kind == "hard_sigmoid":
            lines += [f"struct {key}_cfg {{ static const unsigned n_in = N; static const {layer.slope_t.hls()} slope; "
                      f"static const {layer.shift_t.hls()} shift; }};",
                      f"const {layer.slope_t.hls()} {key}_cfg::slope = {layer.slope!r};",
                      f"const {layer.shift_t.hls()} {key}_cfg::shift = {layer.shift!r};"]
            calls.append(f"nnet::hard_sigmoid<in_t, {key}_out_t, {key}_cfg>(x, {key}_y);")
        else:
            lines.append(f"struct {key}_cfg : nnet::activ_config {{ static const unsigned n_in = N; }};")
            lines.append(f"typedef {layer.param_t.hls()} {key}_param_t;")
            if layer.per_channel:
                lines.append(f"static {key}_param_t {key}_alpha[N];")
                calls.append(f"for (unsigned i = 0; i < N; i++) {key}_alpha[i] = {key}_slopes[i % "
                             f"{layer.alpha.size}];")
                slopes = ", ".join(repr(float(a)) for a in layer.alpha)
                lines.append(f"static const double {key}_slopes[] = {{{slopes}}};")
                calls.append(f"nnet::prelu<in_t, {key}_param_t, {key}_out_t, {key}_cfg>(x, {key}_alpha, {key}_y);")
            else:
                calls.append(f"nnet::leaky_relu<in_t, {key}_param_t, {key}_out_t, {key}_cfg>(x, "
                             f"{float(layer.alpha[0])!r}, {key}_y);")
        lines.append(f"static {key}_out_t {key}_y[N];")
    lines += ["int main() {", "    static in_t x[N];",
              f"    for (unsigned i = 0; i < N; i++) x[i].V = (int)i - {n // 2};", *("    " + c for c in calls)]
    for key in layers:
        lines.append(f'    for (unsigned i = 0; i < N; i++) printf("{key} %lld\\n", '
                     f'(long long){key}_y[i].V.to_int64());')
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


@needs_gxx
def test_every_input_equals_hls4mls_own_activation_functions(tmp_path):
    layers = _layers()
    templates = Path(hls4ml.__file__).parent / "templates" / "vivado"
    (tmp_path / "act.cpp").write_text(_program(layers))
    # -O3 as hls4ml's build_lib.sh; -w: ap_types' own deprecation warnings.
    subprocess.run(["g++", "-O3", "-std=c++17", "-w", f"-I{templates}", f"-I{templates / 'ap_types'}", "act.cpp",
                    "-o", "act"], cwd=tmp_path, check=True, timeout=300)
    out = subprocess.run([str(tmp_path / "act")], capture_output=True, text=True, check=True, timeout=60).stdout
    got: dict[str, list[int]] = {key: [] for key in layers}
    for line in out.splitlines():
        key, value = line.split()
        got[key].append(int(value))
    x = (np.arange(1 << IN_T.width) - (1 << (IN_T.width - 1))).astype(np.int64)
    for key, layer in layers.items():
        # PReLU's slopes repeat every 4 elements: a batch of rows of 4 channels.
        xs = x.reshape(-1, layer.alpha.size) if layer.kind == "leaky_relu" and layer.per_channel else x[None, :]
        want = KERNELS[layer.kind](layer, xs, IN_T).reshape(-1)
        hls = np.array(got[key])
        bad = np.flatnonzero(want != hls)
        assert not bad.size, (f"{key}: {bad.size} of {x.size} differ; first at x={x[bad[0]]}: reference "
                              f"{want[bad[0]]}, hls4ml {hls[bad[0]]}")
        assert len(set(want.tolist())) > 8  # the inputs exercise the function, not one constant


def _model() -> Graph:
    rng = np.random.default_rng(3)
    dense = lambda name, n_out, n_in: Dense(name, rng.normal(size=(n_out, n_in)), rng.normal(size=n_out))  # noqa: E731
    return Graph.chain("acts", (6,), (
        dense("fc0", 8, 6), LeakyReLU("leaky", alpha=np.array([0.1])), dense("fc1", 8, 8), Sigmoid("sig"),
        dense("fc2", 8, 8), Tanh("tanh"), dense("fc3", 8, 8), LeakyReLU("prelu", alpha=rng.uniform(-0.3, 0.5, 8)),
        BatchNorm("norm", scale=rng.uniform(-2, 2, 8), bias=rng.normal(size=8)), dense("fc4", 8, 8), HardSigmoid("hsig", 1 / 6, 0.5),
        dense("fc5", 8, 8), Selu("selu"), dense("fc6", 3, 8)))


@needs_gxx
def test_hls4ml_csim_equals_the_reference_with_every_activation(tmp_path, monkeypatch):
    from hwprune.hls4ml_options import HlsOptions
    from hwprune.pipeline import ExportOptions, export_model

    monkeypatch.setenv("HWPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    x = np.random.default_rng(4).normal(size=(64, 6)) * 2
    # The norm and the Dense after it round half to even (AP_RND_CONV, QKeras's rounding).
    graph = calibrate(_model(), x)
    graph = graph.with_layers([layer.with_(result_t=layer.result_t.with_(rounding=Rounding.RND_CONV))
                               if layer.name in ("norm", "fc4") else layer for layer in graph.layers])
    out = export_model(graph, tmp_path / "e", x, ExportOptions(), backends=(HlsOptions(),))
    report = json.loads((out / "report.json").read_text())
    for engine in ("host", "hls4ml"):
        run = report["engines"][engine]
        assert run["available"] and run["bit_exact"] and run["mismatches"] == 0, (engine, run)
    top = next((out / "hls4ml" / "firmware").glob("*.cpp")).read_text()
    for call in ("nnet::leaky_relu<", "nnet::sigmoid<", "nnet::tanh<", "nnet::prelu<", "nnet::hard_sigmoid<",
                 "nnet::normalize<", "nnet::selu<"):
        assert call in top
