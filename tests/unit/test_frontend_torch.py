"""torch.nn -> IR, with torch as the oracle of the float function."""

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.errors import ModelError, UnsupportedLayerError
from hwprune.frontends.torch import from_torch, load_torch_model, to_torch
from hwprune.quant.calibrate import float_forward


def torch_out(model, x):
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(x, dtype=torch.float32)).double().numpy()


def test_sequential_with_dropout_identity_and_softmax(rng):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(7, 13), nn.ReLU(), nn.Dropout(0.3), nn.Identity(),
                          nn.Sequential(nn.Linear(13, 5), nn.ReLU()), nn.Linear(5, 3), nn.Softmax(dim=1))
    g = from_torch(model, name="seq")
    assert [l.kind for l in g.layers] == ["dense", "relu", "dense", "relu", "dense", "softmax"]
    x = rng.normal(size=(20, 7))
    logits = torch_out(model[:-1], x)
    assert np.abs(float_forward(g, x) - logits).max() < 1e-5


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.flat = nn.Flatten()
        self.fc1 = nn.Linear(6, 4)
        self.fc2 = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(self.flat(x))))


class Gelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return nn.functional.gelu(self.fc(x))


def test_custom_chain_module_is_traced(rng):
    model = Chain()
    g = from_torch(model, input_shape=(2, 3))
    assert [l.kind for l in g.layers] == ["flatten", "dense", "relu", "dense"]
    x = rng.normal(size=(9, 2, 3))
    assert np.abs(float_forward(g, x) - torch_out(model, x)).max() < 1e-5


@pytest.mark.parametrize(
    "model, message",
    [
        (nn.Sequential(nn.Linear(4, 4), nn.GELU()), r"module '1' \(GELU\) is not supported"),
        (nn.Sequential(nn.Linear(4, 4), nn.Softmax(dim=1), nn.Linear(4, 2)), "only supported as the last layer"),
        (Gelu(), r"^node 'gelu' \(call_function gelu\) is not supported"),
    ],
)
def test_unsupported_models_name_the_module(model, message):
    with pytest.raises(UnsupportedLayerError, match=message):
        from_torch(model)


def test_to_torch_round_trip(rng):
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    g = from_torch(model)
    back = from_torch(to_torch(g))
    assert [l.name for l in back.layers] == [l.name for l in g.layers]
    for a, b in zip(g.dense_layers(), back.dense_layers()):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)


def test_model_files(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(nn.Sequential(nn.Linear(3, 2)).state_dict(), path)
    with pytest.raises(ModelError, match="state_dict"):
        load_torch_model(path)
    path.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a readable torch model"):
        load_torch_model(path)
    with pytest.raises(ModelError, match="no such file"):
        load_torch_model(tmp_path / "missing.pt")


def test_shipped_hls4ml_torch_model_loads(rng):
    """The hls4ml example three-layer jet tagger (tests/data/, see README there)."""
    from pathlib import Path

    with pytest.warns(UserWarning, match="trust-model"):  # a legacy pickle: only trusted loading reads it
        model = load_torch_model(Path(__file__).parents[1] / "data" / "three_layer_model.pt", trust_model=True)
    g = from_torch(model, name="jet_tagger")
    assert [l.out_features for l in g.dense_layers()] == [64, 32, 32, 5]
    x = rng.normal(size=(50, 16))
    assert np.abs(float_forward(g, x) - torch_out(model[:-1], x)).max() < 1e-4


def _trained_batchnorm(model, rng):
    model.train()
    with torch.no_grad():
        for _ in range(5):  # move the running statistics away from 0 and 1
            model(torch.tensor(rng.normal(1.5, 2.0, size=(64, model[0].in_features)), dtype=torch.float32))
    for m in model:
        if isinstance(m, nn.BatchNorm1d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-1.0, 1.0)
    return model.eval()


@pytest.mark.parametrize("where", ["after_linear", "after_relu"])
def test_batchnorm_is_folded_into_the_adjacent_linear(rng, where):
    torch.manual_seed(1)
    if where == "after_linear":
        model = nn.Sequential(nn.Linear(6, 9), nn.BatchNorm1d(9), nn.ReLU(), nn.Linear(9, 4))
    else:
        model = nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.BatchNorm1d(9), nn.Dropout(0.2), nn.Linear(9, 4))
    model = _trained_batchnorm(model, rng)
    g = from_torch(model)
    assert [l.kind for l in g.layers] == ["dense", "relu", "dense"]
    x = rng.normal(1.0, 2.0, size=(30, 6))
    assert np.abs(float_forward(g, x) - torch_out(model, x)).max() < 1e-4


def _shifted_bn(channels, conv=False):
    bn = (nn.BatchNorm2d if conv else nn.BatchNorm1d)(channels).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(0.2, 0.8), bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 2.0), bn.bias.uniform_(-1.0, 1.0)
    return bn


@pytest.mark.parametrize("model, shape", [
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU(), _shifted_bn(4), nn.ReLU(), nn.Linear(4, 2)), (4,)),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU(), _shifted_bn(4)), (4,)),
    (lambda: nn.Sequential(_shifted_bn(2, conv=True), nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                           nn.Linear(3 * 36, 2)), (2, 6, 6)),
])
def test_batchnorm_that_cannot_be_folded_is_a_layer_of_its_own(model, shape, rng):
    """After an activation and before another, last, or before a padded conv (its shift
    would miss the zero border): a per-channel BatchNorm layer, equal to torch."""
    torch.manual_seed(0)
    module = model().eval()
    g = from_torch(module, shape)
    assert sum(layer.kind == "batchnorm" for layer in g.layers) == 1
    x = rng.normal(size=(20, *shape))
    want = torch_out(module, x)
    got = float_forward(g, x)  # in the source layout
    assert np.abs(got.reshape(want.shape) - want).max() < 1e-4


