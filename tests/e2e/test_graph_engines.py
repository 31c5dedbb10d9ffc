"""The graph networks of ``benchmarks/graph_engines.py``, small: ResNet-8 (a quarter of its
filters, 8x8 images), a MobileNetV2 stack (two stages) and a concatenation net, each from
torch.export, torch's ONNX exporter and Keras 3. The float graph equals each framework
within 1e-5; at 8 and 16 bits all 18 quantized graphs run in one host executable equal to
the reference; two of them run as Cortex-M4 firmware, and the MobileNetV2 stack (depthwise
convs, ReLU6, a residual Add) in hls4ml's C simulation, all bit for bit. Two tests, not
one per check: the suite spreads tests over processes, and each would build the fixtures."""

import json
import shutil

import numpy as np
import pytest
import torch

from benchmarks.graph_engines import float_model
from benchmarks.graph_models import (
    TorchConcatNet, TorchMobileNetV2, TorchResNet8, keras_concat_net, keras_mobilenet_v2, keras_resnet8,
    randomize_batchnorm, randomize_keras_batchnorm, save_model_files,
)
from hwprune import reference
from hwprune.harness.mcu import McuEngine
from hwprune.hls4ml_options import HlsOptions
from hwprune.pipeline import ExportOptions, load_model, quantize_graph, write_export
from tests.safety.multibuild import build_and_run, first_difference

SIZE = 8
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2))  # MobileNetV2's first two stages: one residual Add
MODELS = {
    "resnet8": (lambda: TorchResNet8(0.25, SIZE), lambda: keras_resnet8(0.25, SIZE)),
    "mobilenetv2": (lambda: TorchMobileNetV2(0.35, stages=STAGES),
                    lambda: keras_mobilenet_v2(0.35, SIZE, stages=STAGES)),
    "concat": (lambda: TorchConcatNet(2), lambda: keras_concat_net(2, SIZE)),
}
VECTORS = 3


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("graph_engines")
    torch.manual_seed(0)
    images = np.random.default_rng(0).uniform(0, 1, size=(16, 3, SIZE, SIZE)).astype(np.float32)
    out = {}
    for name, (make_torch, make_keras) in MODELS.items():
        saved = save_model_files(randomize_batchnorm(make_torch()), randomize_keras_batchnorm(make_keras()), root,
                                 name, images)
        out.update({(name, frontend): value for frontend, value in saved.items()})
    return out


@pytest.fixture(scope="module")
def quantized(files):
    """(name, frontend, bits) -> (float graph, quantized graph named uniquely, integer inputs)."""
    out = {}
    for (name, frontend), (path, x, _) in files.items():
        graph = load_model(path)
        for bits in (8, 16):
            q = quantize_graph(graph, x, ExportOptions(weight_bits=bits, activation_bits=bits))
            q = q.replace(name=f"{name}_{frontend}_{bits}")
            out[name, frontend, bits] = graph, q, reference.quantize_input(q, x[:VECTORS])
    return out


def test_float_host_c_and_m4_equal_their_oracles(files, quantized, tmp_path):
    """One test (the suite spreads tests over processes; module fixtures would be built again)."""
    for (name, frontend), (path, x, expected) in files.items():
        graph = quantized[name, frontend, 8][0]
        assert not graph.is_chain and {"add", "concatenate"} & {layer.kind for layer in graph.layers}
        diff = np.abs(float_model(graph, x) - expected).max()
        assert diff < 1e-5, (name, frontend, diff)
    keys = sorted(quantized)
    assert len(keys) == 18
    graphs, inputs = [quantized[k][1] for k in keys], [quantized[k][2] for k in keys]
    outputs = build_and_run(graphs, inputs, tmp_path, ["auto"] * len(keys))  # one compiler run
    problems = [first_difference(g, x, y) for g, x, y in zip(graphs, inputs, outputs)]
    assert not any(problems), [p for p in problems if p][:1]
    for key in (("resnet8", "keras", 8), ("mobilenetv2", "pt2", 16)):
        _, q, x = quantized[key]
        got = McuEngine(target="stm32l4r5").run(tmp_path / q.name, x).outputs
        problem = first_difference(q, x, got.reshape(len(x), *q.output_shape), "Cortex-M4")
        assert not problem, (key, problem)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_depthwise_relu6_and_residual_add_are_bit_exact_in_hls4ml(files, tmp_path):
    path, x, _ = files["mobilenetv2", "onnx"]
    graph = load_model(path)
    q = quantize_graph(graph, x, ExportOptions(weight_bits=8, activation_bits=8))
    assert sum(layer.kind == "conv2d" and layer.depthwise for layer in q.layers) == 3
    out = write_export(q, tmp_path / "export", x[:VECTORS], ExportOptions(weight_bits=8, activation_bits=8),
                       source=str(path), float_graph=graph, backends=(HlsOptions(),))
    report = json.loads((out / "report.json").read_text())
    engine = report["engines"]["hls4ml"]
    assert engine["available"] and engine["bit_exact"] and report["bit_exact"], engine
