"""The graph networks of ``benchmarks/graph_engines.py``, small: ResNet-8 (a quarter of its
filters, 8x8 images), a MobileNetV2 stack (two stages) and a concatenation net, each from
torch.export, torch's ONNX exporter and Keras 3. The float graph equals each framework
within 1e-5; at 8 and 16 bits all 18 quantized graphs run in one host executable equal to
the reference; two of them run as Cortex-M4 firmware, and the MobileNetV2 stack (depthwise
convs, ReLU6, a residual Add) in hls4ml's C simulation, all bit for bit."""

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
from hwprune.backends.hls4ml.options import HlsOptions
from hwprune.harness.mcu import McuEngine
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


def test_the_float_graph_equals_torch_onnxruntime_and_keras(files):
    for (name, frontend), (path, x, expected) in files.items():
        graph = load_model(path)
        assert not graph.is_chain and {"add", "concatenate"} & {layer.kind for layer in graph.layers}
        diff = np.abs(float_model(graph, x) - expected).max()
        assert diff < 1e-5, (name, frontend, diff)


@pytest.fixture(scope="module")
def host_build(quantized, tmp_path_factory):
    keys = sorted(quantized)
    root = tmp_path_factory.mktemp("graph_engines_c")
    graphs = [quantized[k][1] for k in keys]
    outputs = build_and_run(graphs, [quantized[k][2] for k in keys], root, ["auto"] * len(keys))
    return root, dict(zip(keys, outputs))


def test_host_c_equals_the_reference_on_every_graph_at_8_and_16_bits(quantized, host_build):
    _, outputs = host_build
    assert len(outputs) == 18
    problems = [first_difference(quantized[k][1], quantized[k][2], y) for k, y in outputs.items()]
    assert not any(problems), [p for p in problems if p][:1]


@pytest.mark.parametrize("key", [("resnet8", "keras", 8), ("mobilenetv2", "pt2", 16)])
def test_cortex_m4_firmware_equals_the_reference(quantized, host_build, key):
    root, _ = host_build
    _, q, x = quantized[key]
    got = McuEngine(target="stm32l4r5").run(root / q.name, x).outputs
    assert not first_difference(q, x, got.reshape(len(x), *q.output_shape))


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_depthwise_relu6_and_residual_add_are_bit_exact_in_hls4ml(files, quantized, tmp_path):
    path, x, _ = files["mobilenetv2", "onnx"]
    graph, q, _ = quantized["mobilenetv2", "onnx", 8]
    assert sum(layer.kind == "conv2d" and layer.depthwise for layer in q.layers) == 3
    out = write_export(q, tmp_path / "export", x[:VECTORS], ExportOptions(weight_bits=8, activation_bits=8),
                       source=str(path), float_graph=graph, hls=HlsOptions())
    report = json.loads((out / "report.json").read_text())
    engine = report["engines"]["hls4ml"]
    assert engine["available"] and engine["bit_exact"] and report["bit_exact"], engine
