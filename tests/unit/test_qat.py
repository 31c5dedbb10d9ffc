"""QAT: the forward pass is the integer reference, bit for bit; masks compose; it trains."""

import copy
import io

import numpy as np
import pytest
import torch
from torch import nn

from hwprune import reference
from hwprune.errors import OptionError, UnsupportedLayerError
from hwprune.frontends.torch import from_torch, load_torch_model
from hwprune.prune.criteria import compute_masks
from hwprune.prune.masks import apply_masks, get_masks
from hwprune.quant.calibrate import QuantConfig, calibrate
from hwprune.ir.fixed import Fixed, Overflow, Rounding, quantize, to_real
from hwprune.qat.model import (
    FakeQuant, QATLinear, _float_view, convert_qat, prepare_qat, qat_graph, recalibrate_qat,
)

torch.set_num_threads(1)


def _random_case(seed):
    rng = np.random.default_rng(seed)
    sizes = [int(v) for v in rng.integers(2, 40, size=rng.integers(2, 5))]
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    weight_bits, activation_bits = int(rng.integers(2, 9)), int(rng.integers(2, 17))
    # float32-representable inputs: the torch model and the reference see the same values
    x = (rng.normal(size=(64, sizes[0])) * rng.uniform(0.1, 10)).astype(np.float32).astype(np.float64)
    if seed % 3 == 0:
        x = np.abs(x)  # unsigned input types too
    return model, weight_bits, activation_bits, x


def _qat_out(qat, x):
    with torch.no_grad():
        return qat(torch.from_numpy(x).float()).double().numpy()


def _assert_equal(got, expected):
    if not np.array_equal(got, expected):
        idx = tuple(int(i) for i in np.argwhere(got != expected)[0])
        pytest.fail(f"element {idx}: QAT {got[idx]!r} != reference {expected[idx]!r}")


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("t", [Fixed(4, 2, True), Fixed(5, 0, False), Fixed(3, -1, True), Fixed(12, 7, True)])
def test_fake_quant_forward_is_quantize_and_backward_is_straight_through(t, rounding, overflow):
    t = t.with_(rounding=rounding, overflow=overflow)
    x = torch.linspace(2 * t.min_value - 1, 2 * t.max_value + 1, 997, dtype=torch.float64, requires_grad=True)
    y = FakeQuant.apply(x, t)
    assert np.array_equal(y.detach().numpy(), to_real(quantize(x.detach().numpy(), t), t))
    y.backward(torch.full_like(x, 3.0))
    inside = (x >= t.min_value) & (x <= t.max_value)
    expected = torch.where(inside | (overflow is Overflow.WRAP), 3.0, 0.0)
    assert torch.equal(x.grad, expected.double())


@pytest.mark.parametrize("seed", range(12))
def test_qat_forward_equals_reference_of_calibrated_graph(seed):
    model, weight_bits, activation_bits, x = _random_case(seed)
    if seed == 5:
        with torch.no_grad():  # tiny biases: a bias type finer than the accumulator's grid
            model[0].bias.mul_(1e-4)
    qat = prepare_qat(model, weight_bits, activation_bits, x[:40])
    expected = reference.predict(calibrate(from_torch(model), x[:40], QuantConfig(weight_bits, activation_bits)), x)
    _assert_equal(_qat_out(qat, x), expected)
    _assert_equal(reference.predict(qat_graph(qat), x), expected)


def test_exact_after_training_and_after_recalibration():
    model, _, _, x = _random_case(1)
    qat = prepare_qat(model, 4, 6, x)
    opt = torch.optim.Adam(qat.parameters(), lr=0.05)
    y = torch.from_numpy(x).float()[:, :1].expand(-1, qat[-1].out_features)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.mse_loss(qat(torch.from_numpy(x).float()), y).backward()
        opt.step()
    # Types are fixed: the trained model is still exactly its own graph.
    _assert_equal(_qat_out(qat, x), reference.predict(qat_graph(qat), x))
    recalibrate_qat(qat, x, 4, 6)
    expected = reference.predict(calibrate(from_torch(_float_view(qat)), x, QuantConfig(4, 6)), x)
    _assert_equal(_qat_out(qat, x), expected)


def test_real_model_with_final_softmax():
    model = load_torch_model("tests/data/three_layer_model.pt", trust_model=True)
    x = np.random.default_rng(0).normal(size=(100, 16)).astype(np.float32).astype(np.float64)
    qat = prepare_qat(model, 6, 10, x)
    logits = _qat_out(qat[:-1], x)  # the reference ends in logits: softmax is a marker
    _assert_equal(logits, reference.predict(calibrate(from_torch(model), x, QuantConfig(6, 10)), x))


def test_masked_weights_stay_zero_through_qat_training():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Dropout(0.1), nn.Linear(20, 3))
    masks = compute_masks(model, 0.7, scope="global")
    apply_masks(model, masks)
    x = np.random.default_rng(1).normal(size=(64, 10)).astype(np.float32)
    qat = prepare_qat(model, 3, 8, x)
    assert set(get_masks(qat)) == {"0", "3"} and all(torch.equal(get_masks(qat)[k], masks[k]) for k in masks)
    opt = torch.optim.Adam(qat.parameters(), lr=0.05, weight_decay=0.1)
    labels = torch.from_numpy(np.arange(64) % 3)
    for _ in range(10):
        opt.zero_grad()
        nn.functional.cross_entropy(qat(torch.from_numpy(x)), labels).backward()
        opt.step()
    graph = qat_graph(qat)
    for name, layer in zip(("0", "3"), graph.dense_layers()):
        assert np.all(layer.weight[~masks[name].numpy()] == 0)
        assert np.all(qat.get_submodule(name).quantized_weight().detach().numpy()[~masks[name].numpy()] == 0)
    qat.eval()
    _assert_equal(_qat_out(qat, x.astype(np.float64)), reference.predict(graph, x))


def test_convert_qat_gives_a_plain_module_on_the_grid():
    model, _, _, x = _random_case(2)
    apply_masks(model, compute_masks(model, 0.5))
    qat = prepare_qat(model, 5, 8, x)
    plain = convert_qat(qat)
    assert not any(isinstance(m, QATLinear) for m in plain.modules())
    assert [type(m) for m in plain] == [nn.Linear if isinstance(m, nn.Linear) else nn.ReLU for m in model]
    buffer = io.BytesIO()
    torch.save(plain, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    exact = qat_graph(qat)
    # Calibrating the converted module again reproduces the trained quantized weights.
    again = calibrate(from_torch(loaded), x, QuantConfig(5, 8))
    for a, b in zip(again.dense_layers(), exact.dense_layers()):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    # The input model is untouched.
    assert "input_quant" not in dict(model.named_children()) and set(get_masks(model)) == {"0", "2", "4"}


def test_bad_arguments():
    model, _, _, x = _random_case(0)
    with pytest.raises(OptionError, match="weight_bits"):
        prepare_qat(model, 9, 8, x)
    with pytest.raises(OptionError, match="calibration"):
        prepare_qat(model, 4, 8)
    with pytest.raises(UnsupportedLayerError, match="BatchNorm1d.*fold BatchNorm first"):
        prepare_qat(nn.Sequential(nn.Linear(x.shape[1], 4), nn.BatchNorm1d(4)), 4, 8, x)
    with pytest.raises(UnsupportedLayerError, match="could not be traced with torch.fx"):
        prepare_qat(_TensorIf(x.shape[1]), 4, 8, x)  # not a chain: read with torch.fx, which cannot trace an if


class _TensorIf(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.fc = nn.Linear(n, 3)

    def forward(self, x):
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


def test_four_bit_qat_beats_post_training_quantization_on_digits():
    from hwprune.data import load_dataset
    from hwprune.prune.train import fit, make_mlp

    data = load_dataset("digits")
    calibration = data.x_train.astype(np.float64)
    config = QuantConfig(weight_bits=4, activation_bits=8)

    def accuracy(graph):
        return float((reference.predict(graph, data.x_test).argmax(axis=1) == data.y_test).mean())

    ptq, qat = [], []
    for seed in (1, 2, 3):
        model = make_mlp((64, 32, 10), seed=seed)
        fit(model, data.x_train, data.y_train, epochs=20, lr=3e-3, seed=seed)
        # Same budget: the post-training baseline trains in float for the epochs QAT trains.
        longer = copy.deepcopy(model)
        fit(longer, data.x_train, data.y_train, epochs=20, lr=3e-3, seed=seed + 100)
        ptq.append(accuracy(calibrate(from_torch(longer), calibration, config)))
        quantized = prepare_qat(model, config.weight_bits, config.activation_bits, calibration)
        fit(quantized, data.x_train, data.y_train, epochs=20, lr=3e-3, seed=seed + 100)
        qat.append(accuracy(qat_graph(quantized)))
    assert all(q >= p for q, p in zip(qat, ptq)), (qat, ptq)
    assert np.mean(qat) >= np.mean(ptq) + 0.01, (qat, ptq)
