"""torch models that are graphs, not chains, for the frontend tests (importable by name, so a
model pickled with ``torch.save`` reads back with --trust-model in a child process)."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

MODELS_DIR = Path(__file__).parent


def hwprune_cli(*args, cwd, timeout=900):
    """The CLI in a child process that can import these model classes (for --trust-model)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(MODELS_DIR), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "hwprune", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def _conv_bn(cin, cout, k, stride, padding):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False), nn.BatchNorm2d(cout))


class Stack(nn.Module):
    """Two 3x3 convs with BatchNorm and a shortcut (the input, or a 1x1 stride-2 conv), added, then ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        # Keras "same" on an even size with stride 2 pads (0, 1); torch pads symmetrically, so pad explicitly
        self.pad = nn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else nn.Identity()
        self.conv1 = _conv_bn(cin, cout, 3, stride, 0 if stride == 2 else 1)
        self.conv2 = _conv_bn(cout, cout, 3, 1, 1)
        self.shortcut = _conv_bn(cin, cout, 1, stride, 0) if stride == 2 else nn.Identity()

    def forward(self, x):
        y = torch.relu(self.conv1(self.pad(x)))
        return torch.relu(self.shortcut(x) + self.conv2(y))


class ResNet8(nn.Module):
    """MLPerf Tiny's ResNet-8 (``benchmarks/graphs.py``) at ``width`` times its filters, on
    ``size`` x ``size`` images."""

    def __init__(self, width=1.0, size=32, classes=10):
        super().__init__()
        f = [max(1, int(round(n * width))) for n in (16, 32, 64)]
        self.stem = _conv_bn(3, f[0], 3, 1, 1)
        self.stack1 = Stack(f[0], f[0], 1)
        self.stack2 = Stack(f[0], f[1], 2)
        self.stack3 = Stack(f[1], f[2], 2)
        self.pool = nn.AvgPool2d(size // 4)
        self.fc = nn.Linear(f[2], classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = self.stack3(self.stack2(self.stack1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class Inception(nn.Module):
    """Two branches concatenated on channels (one with ReLU6, one with a depthwise conv), a
    product of branches, then global pooling."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 3, 3, padding=1)
        self.b = nn.Conv2d(2, 2, 1)
        self.dw = nn.Conv2d(2, 2, 3, padding=1, groups=2)
        self.bn = nn.BatchNorm2d(5)
        self.gate = nn.Conv2d(5, 5, 1)
        self.fc = nn.Linear(5, 4)

    def forward(self, x):
        y = torch.cat([nn.functional.relu6(self.a(x)), self.dw(self.b(x))], dim=1)
        y = torch.clamp(self.bn(self.gate(y)), -1.0, 1.0) * y
        return self.fc(nn.functional.adaptive_avg_pool2d(y, 1).view(x.size(0), -1))


class SkipMLP(nn.Module):
    """A dense skip connection and a feature concatenation."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.bn1 = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 8)
        self.fc3 = nn.Linear(14, 3)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        h = torch.relu(self.bn1(self.fc1(x)))
        h = h + self.drop(self.fc2(h))
        return self.fc3(torch.cat((h, x), 1))


def randomize_batchnorm(model, seed=0):
    """Running statistics and affine parameters away from 0 and 1, so folding is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model.eval()


class TensorIf(nn.Module):
    """A Python ``if`` on a tensor's value: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 4)
        self.b = nn.Linear(6, 4)

    def forward(self, x):
        return self.a(x) if x.sum() > 0 else self.a(x) + self.b(x)
