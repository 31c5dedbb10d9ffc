"""QAT on graphs with the elementwise kinds whose integer semantics are a table, a slope or a
per-channel affine (Sigmoid, Tanh, SELU, LeakyReLU, PReLU, HardSigmoid, a BatchNorm after an
activation): the QAT twin's forward pass equals ``reference.predict`` of its graph bit for
bit, before and after training, and gradients reach the weights through them."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwprune import reference
from hwprune.qat.model import prepare_qat
from hwprune.qat.graph import QATGraphTwin, qat_graph_of


class DenseActs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.bn = nn.BatchNorm1d(8)
        self.prelu = nn.PReLU(8)
        self.out = nn.Linear(8, 4)

    def forward(self, x):
        h = self.bn(torch.sigmoid(self.fc1(x)))  # after an activation: a BatchNorm of its own
        a = torch.tanh(self.fc2(h))
        b = F.leaky_relu(self.fc3(h), 0.1)
        return self.out(self.prelu(F.hardsigmoid(a + b) + F.selu(a)))


class ConvActs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.bn, self.prelu = nn.BatchNorm2d(4), nn.PReLU(4)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        h = self.bn(torch.tanh(self.conv1(x)))
        y = self.prelu(self.conv2(h)) + torch.sigmoid(h)
        return self.fc(torch.flatten(y, 1))


def _randomize(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, nn.PReLU):
                m.weight.uniform_(0.05, 0.4)
    return model.eval()


@pytest.mark.parametrize("model, shape", [(DenseActs, (6,)), (ConvActs, (2, 6, 6))])
def test_qat_forward_is_the_reference_through_every_elementwise_kind(model, shape):
    torch.manual_seed(0)
    module = _randomize(model())
    x = np.random.default_rng(0).normal(size=(24, *shape)).astype(np.float32)
    qat = prepare_qat(module, 6, 10, calibration_x=x)
    assert isinstance(qat, QATGraphTwin)
    kinds = {layer.kind for layer in qat.graph.layers}
    assert kinds >= {"sigmoid", "tanh", "batchnorm", "leaky_relu"}
    opt = torch.optim.SGD(qat.parameters(), lr=1e-3)
    for step in range(3):
        y = qat(torch.tensor(x))
        want = reference.predict(qat_graph_of(qat), x)
        got = y.detach().numpy()
        bad = np.argwhere(got != want)
        assert bad.size == 0, f"step {step}: {len(bad)} outputs differ, first {bad[:3].tolist()}"
        before = {n: p.detach().clone() for n, p in qat.named_parameters() if p.requires_grad}
        loss = y.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        if step == 0:  # the first layer's gradient passes every activation kind on its way back
            first = qat.layer_module(qat.graph.weighted_layers()[0].name)
            assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
        opt.step()
        assert any(not torch.equal(before[n], p) for n, p in qat.named_parameters() if p.requires_grad)
