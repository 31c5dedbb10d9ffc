"""HGQ proxy models read with their per-element types, against HGQ's formula written out here.

The oracle is HGQ's ``FixedPointQuantizer`` (``HGQ/proxy/fixed_point_quantizer.py``,
``gfixed_quantizer``) as its definition reads, transcribed in numpy independently of
hwprune: per element, with ``f = bits - integers``, ``v = x * 2^f`` is rounded (TRN: floor,
RND: floor(v + 1/2), RND_CONV: half to even), then WRAP brings it into
``[low, high]`` modulo ``high - low + 1`` and SAT clamps it, with
``high = 2^(bits - keep_negative) - 1`` and ``low = -(high + 1) * keep_negative``; the value is
``v / 2^f``, or 0 where ``bits`` is 0. Dense layers are ``x @ W + b`` in float64, exact on
these grids. TensorFlow and HGQ are not needed (``benchmarks/hgq_oracle.py`` runs HGQ itself).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.errors import UnsupportedLayerError, WeightError
from hwprune.exportdir import read_vectors
from hwprune.frontends.keras import from_keras_h5
from hwprune.harness import verify
from hwprune.harness.mcu import McuEngine
from hwprune.hls4ml_options import HlsOptions
from hwprune.ir import Graph, GraphInput, Quantize, load_graph, save_graph
from hwprune.pipeline import ExportOptions, export_model
from hwprune.ir.fixed import Fixed, quantize, to_real

DATA = Path(__file__).resolve().parents[1] / "data"
JET = DATA / "hgq_jet_classifier.h5"
MODES = [(r, s) for r in ("TRN", "RND", "RND_CONV") for s in ("WRAP", "SAT")]


def hgq_fixed(x, keep_negative, bits, integers, rnd: str, sat: str) -> np.ndarray:
    k, b, i = (np.asarray(a, dtype=np.float64) for a in (keep_negative, bits, integers))
    scale = 2.0 ** (b - i)
    v = np.asarray(x, dtype=np.float64) * scale
    v = {"TRN": np.floor, "RND": lambda u: np.floor(u + 0.5), "RND_CONV": np.round}[rnd](v)
    high = 2.0 ** (b - k) - 1
    low = -(high + 1) * k
    v = np.clip(v, low, high) if sat == "SAT" else np.mod(v - low, high - low + 1) + low
    return np.where(b != 0, v / scale, 0.0)


def _random_parameters(rng, shape):
    bits = rng.integers(0, 9, size=shape)
    return rng.integers(0, 2, size=shape), bits, rng.integers(-2, 7, size=shape)


@pytest.mark.parametrize("rnd,sat", MODES)
def test_the_quantize_kernel_is_hgqs_formula(rnd, sat):
    rng = np.random.default_rng(len(rnd) * 7 + len(sat))
    k, b, i = _random_parameters(rng, (3, 4))
    layer = Quantize("q", widths=b, int_bits=np.where(b == 0, 0, i), signed=np.where(b == 0, 0, k), rounding=rnd,
                     overflow=sat)
    layer = layer.with_(result_t=layer.common_type())
    in_t = Fixed(16, 6)
    graph = Graph("q", (GraphInput("input", (2, 3, 4), in_t),), (layer.with_(inputs=("input",)),))
    x = rng.integers(in_t.min_int, in_t.max_int + 1, size=(200, 2, 3, 4))
    y = to_real(reference.run(graph, x), layer.result_t)
    expected = hgq_fixed(to_real(x, in_t), k, b, i, rnd, sat)
    assert np.array_equal(y, expected), np.argwhere(y != expected)[:5]


def test_the_input_type_makes_float_inputs_exact():
    """Floats cast to ``input_type`` first and then per element equal HGQ's direct cast (TRN and
    half-up RND with one more fraction bit), wrapping and saturating alike."""
    rng = np.random.default_rng(3)
    k, b, i = _random_parameters(rng, (16,))
    x = rng.normal(scale=8.0, size=(500, 16))
    for rnd, sat in [m for m in MODES if m[0] != "RND_CONV"]:
        layer = Quantize("q", widths=b, int_bits=np.where(b == 0, 0, i), signed=np.where(b == 0, 0, k), rounding=rnd,
                         overflow=sat)
        layer = layer.with_(result_t=layer.common_type())
        in_t = layer.input_type()
        graph = Graph("q", (GraphInput("input", (16,), in_t),), (layer.with_(inputs=("input",)),))
        y = to_real(reference.run(graph, quantize(x, in_t)), layer.result_t)
        assert np.array_equal(y, hgq_fixed(x, k, b, i, rnd, sat)), (rnd, sat)


def test_quantize_layers_are_bit_exact_in_c_on_the_host_and_the_m4(tmp_path):
    """Every rounding and overflow mode, per element, per channel and for all: the host C and
    the Cortex-M4 firmware equal the reference (and survive graph.json's round trip)."""
    rng = np.random.default_rng(5)
    graph = _all_modes_graph(rng)
    save_graph(graph, tmp_path / "g")
    assert [l.widths.tolist() for l in load_graph(tmp_path / "g").layers] == [l.widths.tolist() for l in graph.layers]
    export_c(graph, tmp_path / "c", "auto")
    x = rng.integers(graph.input_t.min_int, graph.input_t.max_int + 1, size=(6, 3, 4))
    result = verify(tmp_path / "c", x, ["host", McuEngine(target="stm32l4r5")])
    assert result.comparison("host").bit_exact, result.report()
    assert result.comparison("mcu").bit_exact, result.report()


# -- a proxy model file, written as Keras 2.13's model.save writes one -------------------------

def _entry(class_name: str, name: str, config: dict, source: str | None) -> dict:
    return {"class_name": class_name, "name": name, "config": {"name": name, **config},
            "inbound_nodes": [[[source, 0, 0, {}]]] if source else []}


def _quantizer(name: str, source: str, rnd: str, sat: str, shape) -> dict:
    return _entry("FixedPointQuantizer", name, {"trainable": False, "dtype": "float32", "RND": rnd, "SAT": sat,
                                                "shape": list(shape), "overrides": {"layers": {}},
                                                "fusible": False}, source)


def write_proxy(path: Path, rng) -> dict:
    """input(2, 3) -> q_in (per column, RND SAT) -> reshape(-1) -> dense(5) -> q_d (one type: fused) -> relu ->
    q_r (per neuron, RND_CONV WRAP) -> dense(3) -> q_out (per output, TRN WRAP)."""
    quantizers = {  # name: (source, RND, SAT, keep_negative, bits, integers)
        "q_in": ("input_1", "RND", "SAT", rng.integers(0, 2, (1, 1, 3)), rng.integers(0, 8, (1, 1, 3)),
                 rng.integers(1, 4, (1, 1, 3))),
        "q_d": ("dense", "TRN", "WRAP", np.array([1]), np.array([10]), np.array([5])),
        "q_r": ("relu", "RND_CONV", "WRAP", np.zeros((1, 5), int), rng.integers(2, 7, (1, 5)),
                rng.integers(2, 5, (1, 5))),
        "q_out": ("dense_1", "TRN", "WRAP", np.ones((1, 3), int), rng.integers(6, 10, (1, 3)),
                  rng.integers(4, 6, (1, 3))),
    }
    weights = {"dense": (np.round(rng.normal(size=(6, 5)) * 8) / 8, np.round(rng.normal(size=5) * 4) / 4),
               "dense_1": (np.round(rng.normal(size=(5, 3)) * 16) / 16, np.round(rng.normal(size=3) * 4) / 4)}
    dense = {"activation": "linear", "use_bias": True}
    layers = [_entry("InputLayer", "input_1", {"batch_input_shape": [None, 2, 3], "dtype": "float32"}, None),
              _quantizer("q_in", "input_1", "RND", "SAT", (1, 1, 3)),
              _entry("Reshape", "flat", {"target_shape": [-1]}, "q_in"),
              _entry("Dense", "dense", {**dense, "units": 5}, "flat"),
              _quantizer("q_d", "dense", "TRN", "WRAP", (1,)),
              _entry("Activation", "relu", {"activation": "relu"}, "q_d"),
              _quantizer("q_r", "relu", "RND_CONV", "WRAP", (1, 5)),
              _entry("Dense", "dense_1", {**dense, "units": 3}, "q_r"),
              _quantizer("q_out", "dense_1", "TRN", "WRAP", (1, 3))]
    config = {"class_name": "Functional", "config": {"name": "proxy", "layers": layers,
                                                     "input_layers": [["input_1", 0, 0]],
                                                     "output_layers": [["q_out", 0, 0]]}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.13.1"
        root = f.create_group("model_weights")
        for name, (kernel, bias) in weights.items():
            group = root.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            group[f"{name}/kernel:0"], group[f"{name}/bias:0"] = kernel.astype(np.float32), bias.astype(np.float32)
        for name, (_, _, _, k, b, i) in quantizers.items():
            group = root.create_group(name)
            names = [f"{name}/{p}:0" for p in ("keep_negative", "bits", "integers")]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for n, value in zip(names, (k, b, i)):
                group[n] = np.asarray(value, dtype=np.int8)
    return {"quantizers": quantizers, "weights": weights}


def proxy_forward(model: dict, x: np.ndarray) -> np.ndarray:
    q, w = model["quantizers"], model["weights"]

    def apply(name, v):
        _, rnd, sat, k, b, i = q[name]
        return hgq_fixed(v, k, b, i, rnd, sat)

    h = apply("q_in", x).reshape(len(x), -1)
    h = apply("q_d", h @ w["dense"][0] + w["dense"][1])
    h = apply("q_r", np.maximum(h, 0.0))
    return apply("q_out", h @ w["dense_1"][0] + w["dense_1"][1])


def test_a_proxy_file_reads_with_its_types_and_exports_bit_exact(tmp_path):
    model = write_proxy(tmp_path / "proxy.h5", np.random.default_rng(11))
    graph = from_keras_h5(tmp_path / "proxy.h5")
    assert [l.kind for l in graph.layers] == ["quantize", "reshape", "dense", "relu", "quantize", "dense", "quantize"]
    assert graph.layers[2].result_t == Fixed(10, 5, True)  # the one-type quantizer is the Dense's result
    assert graph.layers[0].widths.shape == (3,) and graph.layers[6].widths.shape == (3,)  # one type per column
    x = np.random.default_rng(12).normal(scale=3.0, size=(300, 2, 3))
    out = export_model(graph, tmp_path / "out", x, ExportOptions())
    assert json.loads((out / "report.json").read_text())["bit_exact"] is True  # host C == reference
    vectors = read_vectors(out)
    assert np.array_equal(to_real(vectors["y_int"], graph.output_t), proxy_forward(model, x))


def test_unknown_modes_are_refused_in_one_line(tmp_path):
    write_proxy(tmp_path / "proxy.h5", np.random.default_rng(1))
    with h5py.File(tmp_path / "proxy.h5", "r+") as f:
        text = f.attrs["model_config"]
        text = text.decode() if isinstance(text, bytes) else text
        f.attrs["model_config"] = text.replace('"SAT": "SAT"', '"SAT": "SAT_SYM"')
    with pytest.raises(UnsupportedLayerError, match=r"layer 'q_in' \(FixedPointQuantizer\): rounding 'RND' with "
                                                    r"overflow 'SAT_SYM' is not supported"):
        from_keras_h5(tmp_path / "proxy.h5")


@pytest.mark.parametrize("dataset,value,error,message", [
    ("bits", 40, UnsupportedLayerError,
     r"layer 'q_out' \(FixedPointQuantizer\): widths \d+\.\.40 bits; hwprune takes 0 to 32"),
    ("keep_negative", 2, WeightError, r"layer 'q_out' \(FixedPointQuantizer\): keep_negative must be 0 or 1"),
])
def test_parameters_out_of_range_are_refused_naming_the_layer(tmp_path, dataset, value, error, message):
    write_proxy(tmp_path / "proxy.h5", np.random.default_rng(2))
    with h5py.File(tmp_path / "proxy.h5", "r+") as f:
        array = f[f"model_weights/q_out/q_out/{dataset}:0"]
        array[0, 0] = value
    with pytest.raises(error, match=message):
        from_keras_h5(tmp_path / "proxy.h5")


# -- the public jet tagger (hls4ml's example-models) --------------------------------------------

def jet_forward(x: np.ndarray) -> np.ndarray:
    """The file's proxy model in numpy: its own weights, its quantizers' own parameters."""
    with h5py.File(JET, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        root = f["model_weights"]

        def arrays(name):  # by the names the group lists, in their order
            group = root[name]
            return [group[n if isinstance(n, str) else n.decode()][()] for n in group.attrs["weight_names"]]

        h = x
        for entry in layers[1:]:
            name, config = entry["config"]["name"], entry["config"]
            if entry["class_name"] == "FixedPointQuantizer":
                k, b, i = arrays(name)  # keep_negative, bits, integers
                h = hgq_fixed(h, k, b, i, config["RND"], config["SAT"])
            elif entry["class_name"] == "Dense":
                kernel, bias = arrays(name)
                h = h @ kernel.astype(np.float64) + bias
            else:
                assert config["activation"] == "relu"
                h = np.maximum(h, 0.0)
    return h


def test_hls4mls_hgq_jet_tagger_equals_its_proxy_model_on_the_host_and_the_m4(tmp_path):
    graph = from_keras_h5(JET)
    quantizers = [l for l in graph.layers if isinstance(l, Quantize)]
    assert len(quantizers) == 5 and any(np.unique(l.widths).size > 1 for l in quantizers)  # heterogeneous
    x = np.random.default_rng(0).normal(size=(200, 16))
    out = export_model(graph, tmp_path / "host", x, ExportOptions())
    assert json.loads((out / "report.json").read_text())["bit_exact"] is True
    vectors = read_vectors(out)
    assert np.array_equal(to_real(vectors["y_int"], graph.output_t), jet_forward(x))
    m4 = export_model(graph, tmp_path / "m4", x[:3], ExportOptions(target="stm32l4r5"))
    report = json.loads((m4 / "report.json").read_text())
    assert report["bit_exact"] is True and report["engines"]["mcu"]["bit_exact"] is True


def _all_modes_graph(rng) -> Graph:
    """One Quantize layer per rounding and overflow mode: per element, per channel, for all."""
    layers = []
    for n, (rnd, sat) in enumerate(MODES):
        k, b, i = _random_parameters(rng, [(3, 4), (4,), ()][n % 3])
        layer = Quantize(f"q{n}", widths=b, int_bits=np.where(b == 0, 0, i), signed=np.where(b == 0, 0, k),
                         rounding=rnd, overflow=sat)
        layers.append(layer.with_(result_t=layer.common_type()))
    return Graph.chain("quant", (3, 4), tuple(layers), input_t=Fixed(12, 4))


def test_quantize_layers_are_hls4mls_fixed_point_quantizer_bit_exact_in_c_simulation(tmp_path):
    pytest.importorskip("hls4ml")
    graph = _all_modes_graph(np.random.default_rng(5))
    x = np.random.default_rng(6).normal(scale=4.0, size=(20, 3, 4))
    out = export_model(graph, tmp_path / "hls", x, ExportOptions(), backends=(HlsOptions(),))
    engines = json.loads((out / "report.json").read_text())["engines"]
    assert engines["hls4ml"]["bit_exact"] is True  # hls4ml's C simulation equals the reference
    with pytest.raises(UnsupportedLayerError, match="io_parallel only"):
        export_model(graph, tmp_path / "stream", x, ExportOptions(), backends=(HlsOptions(io_type="io_stream"),))
