"""QAT on conv models: the forward pass equals the integer reference of qat_graph, bit for bit."""

import numpy as np
import pytest
import torch
from torch import nn

from hwprune import reference
from hwprune.prune.masks import apply_masks
from hwprune.qat.model import convert_qat, prepare_qat, qat_graph
from hwprune.qat.spatial import QATConv1d, QATConv2d, QATPool


def cnn2d():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.ZeroPad2d((1, 0, 0, 1)),
                         nn.Conv2d(6, 8, 3), nn.ReLU(), nn.AvgPool2d(2, padding=1), nn.Flatten(), nn.Linear(32, 5))


def cnn1d():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv1d(3, 6, 5, stride=2, padding=2), nn.ReLU(), nn.AvgPool1d(3, stride=2, padding=1),
                         nn.Conv1d(6, 6, 3, padding="same", groups=6), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                         nn.Linear(6, 4))


@pytest.mark.parametrize("make,shape,bits", [(cnn2d, (1, 8, 8), (6, 8)), (cnn1d, (3, 20), (4, 6))])
def test_qat_forward_is_the_integer_reference(make, shape, bits):
    rng = np.random.default_rng(0)
    model = make()
    first = model[0]
    apply_masks(model, {"0": torch.rand(first.weight.shape) > 0.4})
    x = rng.random(size=(48, *shape)) if len(shape) == 3 else rng.normal(size=(48, *shape))
    qat = prepare_qat(model, *bits, calibration_x=x)
    assert isinstance(qat[1], (QATConv1d, QATConv2d)) and any(isinstance(m, QATPool) for m in qat)
    opt = torch.optim.Adam(qat.parameters(), lr=1e-2)
    for _ in range(3):  # training moves the weights; the types stay fixed
        loss = qat(torch.tensor(x, dtype=torch.float32)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    qat(torch.tensor(x, dtype=torch.float32)).pow(2).mean().backward()
    grad = qat[1].parametrizations.weight.original.grad  # through the pools and convs, straight through
    assert grad is not None and bool(torch.isfinite(grad).all()) and bool((grad != 0).any())
    with torch.no_grad():
        y = qat(torch.tensor(x, dtype=torch.float64)).numpy()
    graph = qat_graph(qat, "net")
    assert graph.input_layout == "channels_first"
    expected = reference.predict(graph, x)
    assert np.array_equal(y, expected), np.argwhere(y != expected)[:5]
    # The plain module with the quantized weights reads back into the same graph.
    plain = convert_qat(qat)
    assert not any(isinstance(m, (QATConv1d, QATConv2d, QATPool)) for m in plain.modules())
    assert int((plain[0].weight == 0).sum()) >= int((~(first.weight != 0)).sum())
