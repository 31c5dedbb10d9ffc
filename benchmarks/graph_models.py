"""The graph networks people deploy, built in torch and in Keras 3 (functional), for the
end-to-end benchmark (``benchmarks/resnet8_engines.py``) and its fast test.

- ResNet-8 as MLPerf Tiny's ``resnet_v1_eembc`` (mlcommons/tiny, image classification)
  defines it: a 3x3 conv of 16 filters + BatchNorm + ReLU on 32x32x3, three stacks of two
  3x3 convs with BatchNorm (16, 32, 64 filters; the second and third start with stride 2 and
  take a plain 1x1 stride-2 conv as their shortcut, the first adds its input), each closed
  by an Add and a ReLU, then average pooling over the whole 8x8 map, Flatten and a Dense of
  10 with softmax.
- A MobileNetV2 block stack (Sandler et al. 2018): a 3x3 stride-2 stem, then inverted
  residuals (1x1 expand + BN + ReLU6, 3x3 depthwise + BN + ReLU6, 1x1 project + BN, an Add
  when stride 1 keeps the channels), at a width multiplier (0.35) with channels rounded to
  multiples of 8 as the reference implementation does, global pooling and a Dense.
- A concatenation network: an Inception-style cell twice (1x1 and 3x3 conv + BN + ReLU
  branches joined on channels), max pooling between, the second cell's output joined with
  its input (a skip on channels), global pooling and a Dense.

Keras pads "same" asymmetrically at stride 2 on an even size (0 before, 1 after); the torch
models pad explicitly so both frameworks compute the same network.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: MobileNetV2's first stages: (expansion t, channels c, repeats n, first stride s)
MOBILENET_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2))


def divisible(v: float, divisor: int = 8) -> int:
    """MobileNetV2's channel rounding: to a multiple of 8, never below 90 % of ``v``."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def resnet8_filters(width: float) -> list[int]:
    return [max(1, int(round(n * width))) for n in (16, 32, 64)]


def mobilenet_plan(alpha: float, stages=MOBILENET_STAGES):
    """(stem channels, [(cin, hidden, cout, stride, residual), ...])."""
    stem = divisible(32 * alpha)
    blocks, cin = [], stem
    for t, c, n, s in stages:
        cout = divisible(c * alpha)
        for i in range(n):
            stride = s if i == 0 else 1
            blocks.append((cin, cin * t, cout, stride, stride == 1 and cin == cout))
            cin = cout
    return stem, blocks


# ---- torch --------------------------------------------------------------------------------


def _bn(c):
    return nn.BatchNorm2d(c)


class _Stack(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.pad = nn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else nn.Identity()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 0 if stride == 2 else 1)
        self.bn1 = _bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.bn2 = _bn(cout)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride) if stride == 2 else nn.Identity()

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(self.pad(x))))
        return torch.relu(self.shortcut(x) + self.bn2(self.conv2(y)))


class TorchResNet8(nn.Module):
    def __init__(self, width: float = 1.0, size: int = 32, classes: int = 10):
        super().__init__()
        f = resnet8_filters(width)
        self.stem = nn.Conv2d(3, f[0], 3, 1, 1)
        self.bn = _bn(f[0])
        self.stacks = nn.Sequential(_Stack(f[0], f[0], 1), _Stack(f[0], f[1], 2), _Stack(f[1], f[2], 2))
        self.pool = nn.AvgPool2d(size // 4)
        self.fc = nn.Linear(f[2], classes)

    def forward(self, x):
        x = self.stacks(torch.relu(self.bn(self.stem(x))))
        return torch.softmax(self.fc(torch.flatten(self.pool(x), 1)), dim=1)


class _Inverted(nn.Module):
    def __init__(self, cin, hidden, cout, stride, residual):
        super().__init__()
        self.residual = residual
        self.expand = nn.Sequential(nn.Conv2d(cin, hidden, 1, bias=False), _bn(hidden), nn.ReLU6()) \
            if hidden != cin else nn.Identity()
        self.pad = nn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else nn.Identity()
        self.depthwise = nn.Sequential(nn.Conv2d(hidden, hidden, 3, stride, 0 if stride == 2 else 1, groups=hidden,
                                                 bias=False), _bn(hidden), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(hidden, cout, 1, bias=False), _bn(cout))

    def forward(self, x):
        y = self.project(self.depthwise(self.pad(self.expand(x))))
        return x + y if self.residual else y


class TorchMobileNetV2(nn.Module):
    def __init__(self, alpha: float = 0.35, classes: int = 10, stages=MOBILENET_STAGES):
        super().__init__()
        stem, blocks = mobilenet_plan(alpha, stages)
        self.stem = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, stem, 3, 2, bias=False), _bn(stem),
                                  nn.ReLU6())
        self.blocks = nn.Sequential(*(_Inverted(*b) for b in blocks))
        self.fc = nn.Linear(blocks[-1][2], classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class _Cell(nn.Module):
    def __init__(self, cin, c1, c3):
        super().__init__()
        self.b1 = nn.Sequential(nn.Conv2d(cin, c1, 1, bias=False), _bn(c1), nn.ReLU())
        self.b3 = nn.Sequential(nn.Conv2d(cin, c3, 3, padding=1, bias=False), _bn(c3), nn.ReLU())

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x)], dim=1)


class TorchConcatNet(nn.Module):
    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.cell1 = _Cell(width, width, width)
        self.pool = nn.MaxPool2d(2)
        self.cell2 = _Cell(2 * width, width, 2 * width)
        self.fc = nn.Linear(3 * width + 2 * width, classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        h = self.pool(self.cell1(x))
        h = torch.cat([self.cell2(h), h], dim=1)  # a skip joined on channels
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorm statistics away from 0 and 1 (so folding is exercised), then eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


# ---- Keras 3 (functional) -------------------------------------------------------------------


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    return keras


def keras_resnet8(width: float = 1.0, size: int = 32, classes: int = 10):
    keras = _keras()
    L = keras.layers
    f = resnet8_filters(width)

    def conv(x, n, k, stride, name):
        return L.Conv2D(n, k, strides=stride, padding="same", kernel_initializer="he_normal", name=name)(x)

    inputs = keras.Input((size, size, 3), name="input")  # the name an unnamed Keras input gets
    x = L.Activation("relu", name="stem_relu")(L.BatchNormalization(name="stem_bn")(conv(inputs, f[0], 3, 1, "stem")))
    for s, n in enumerate(f, start=1):
        stride = 1 if s == 1 else 2
        y = L.Activation("relu", name=f"s{s}_relu1")(L.BatchNormalization(name=f"s{s}_bn1")(
            conv(x, n, 3, stride, f"s{s}_conv1")))
        y = L.BatchNormalization(name=f"s{s}_bn2")(conv(y, n, 3, 1, f"s{s}_conv2"))
        shortcut = x if s == 1 else conv(x, n, 1, 2, f"s{s}_shortcut")
        x = L.Activation("relu", name=f"s{s}_relu2")(L.Add(name=f"s{s}_add")([shortcut, y]))
    x = L.Flatten(name="flatten")(L.AveragePooling2D(size // 4, name="pool")(x))
    outputs = L.Dense(classes, activation="softmax", kernel_initializer="he_normal", name="fc")(x)
    return keras.Model(inputs, outputs, name="resnet8")


def keras_mobilenet_v2(alpha: float = 0.35, size: int = 96, classes: int = 10, stages=MOBILENET_STAGES):
    keras = _keras()
    L = keras.layers
    stem, blocks = mobilenet_plan(alpha, stages)
    inputs = keras.Input((size, size, 3), name="image")
    x = L.Conv2D(stem, 3, strides=2, padding="same", use_bias=False, name="stem")(inputs)
    x = L.ReLU(6.0, name="stem_relu6")(L.BatchNormalization(name="stem_bn")(x))
    for i, (cin, hidden, cout, stride, residual) in enumerate(blocks):
        h = x
        if hidden != cin:
            h = L.Conv2D(hidden, 1, use_bias=False, name=f"b{i}_expand")(h)
            h = L.ReLU(6.0, name=f"b{i}_expand_relu6")(L.BatchNormalization(name=f"b{i}_expand_bn")(h))
        h = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"b{i}_depthwise")(h)
        h = L.ReLU(6.0, name=f"b{i}_depthwise_relu6")(L.BatchNormalization(name=f"b{i}_depthwise_bn")(h))
        h = L.BatchNormalization(name=f"b{i}_project_bn")(L.Conv2D(cout, 1, use_bias=False, name=f"b{i}_project")(h))
        x = L.Add(name=f"b{i}_add")([x, h]) if residual else h
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(classes, name="fc")(x), name="mobilenet_v2")


def keras_concat_net(width: int = 8, size: int = 32, classes: int = 10):
    keras = _keras()
    L = keras.layers

    def branch(x, c, k, name):
        h = L.Conv2D(c, k, padding="same", use_bias=False, name=name)(x)
        return L.Activation("relu", name=f"{name}_relu")(L.BatchNormalization(name=f"{name}_bn")(h))

    def cell(x, c1, c3, name):
        return L.Concatenate(name=f"{name}_cat")([branch(x, c1, 1, f"{name}_b1"), branch(x, c3, 3, f"{name}_b3")])

    inputs = keras.Input((size, size, 3), name="image")
    x = L.Conv2D(width, 3, padding="same", activation="relu", name="stem")(inputs)
    h = L.MaxPooling2D(2, name="pool")(cell(x, width, width, "cell1"))
    h = L.Concatenate(name="skip_cat")([cell(h, width, 2 * width, "cell2"), h])
    x = L.GlobalAveragePooling2D(name="gap")(h)
    return keras.Model(inputs, L.Dense(classes, name="fc")(x), name="concat_net")


def randomize_keras_batchnorm(model, seed: int = 0):
    rng = np.random.default_rng(seed)
    keras = _keras()
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    return model


# ---- model files and what each framework computes ----------------------------------------------


def save_model_files(torch_model: nn.Module, keras_model, folder, name: str, x_nchw: np.ndarray) -> dict:
    """``name``.pt2 (torch.export), ``name``.onnx (torch's ONNX exporter) and ``name``.keras,
    each with its framework's float outputs on ``x_nchw`` (channels-last for Keras): frontend ->
    (path, source-layout inputs, outputs)."""
    import onnxruntime

    folder = Path(folder)
    x = torch.as_tensor(x_nchw, dtype=torch.float32)
    with torch.no_grad():
        y_torch = torch_model(x).numpy()
    torch.export.save(torch.export.export(torch_model, (x[:2],)), folder / f"{name}.pt2")
    torch.onnx.export(torch_model, (x[:2],), str(folder / f"{name}.onnx"), dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    session = onnxruntime.InferenceSession(str(folder / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    y_onnx = session.run(None, {"x": x_nchw.astype(np.float32)})[0]
    keras_model.save(folder / f"{name}.keras")
    x_nhwc = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    y_keras = np.asarray(keras_model.predict(x_nhwc, verbose=0))
    return {"pt2": (folder / f"{name}.pt2", x_nchw, y_torch), "onnx": (folder / f"{name}.onnx", x_nchw, y_onnx),
            "keras": (folder / f"{name}.keras", x_nhwc, y_keras)}
