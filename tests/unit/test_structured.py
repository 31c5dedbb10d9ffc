"""remove_pruned_neurons: the smaller model computes the same function (torch as oracle)."""

import pytest
import torch
from torch import nn

from hwprune.errors import UnsupportedLayerError
from hwprune.prune.criteria import compute_masks
from hwprune.prune.masks import apply_masks, get_masks
from hwprune.prune.structured import remove_pruned_neurons

torch.set_num_threads(1)


def _params(model):
    return sum(p.numel() for p in model.parameters())


def _randomize_norms(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-1, 1)


def _assert_same_function(before, after, x):
    before.eval(), after.eval()
    with torch.no_grad():
        torch.testing.assert_close(after(x), before(x), rtol=0, atol=1e-5)


def test_mlp_with_batchnorm_and_constant_neurons():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(12, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2),
        nn.Sequential(nn.Linear(32, 16), nn.ReLU()), nn.Linear(16, 3), nn.Softmax(dim=1),
    )
    _randomize_norms(model)
    with torch.no_grad():  # large biases: pruned neurons still output relu(BN(bias)) != 0
        model[0].bias.uniform_(-2, 2)
        model[4][0].bias.uniform_(0.5, 2)
    masks = compute_masks(model, 0.5, method="neurons")
    apply_masks(model, masks)
    small = remove_pruned_neurons(model)
    assert small[0].weight.shape == (16, 12) and small[1].num_features == 16
    assert small[4][0].weight.shape == (8, 16) and small[5].weight.shape == (3, 8)
    assert _params(small) < _params(model) - 16 * 12
    _assert_same_function(model, small, torch.randn(64, 12))
    # The input model is unchanged and still masked.
    assert model[0].weight.shape == (32, 12) and set(get_masks(model)) == {"0", "4.0"}


def test_conv_filters_with_batchnorm_fold_into_conv_and_linear():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5),
    )
    _randomize_norms(model)
    apply_masks(model, compute_masks(model, 0.5, method="filters"))
    small = remove_pruned_neurons(model)
    assert small[0].out_channels == 4 and small[1].num_features == 4 and small[3].in_channels == 4
    assert small[3].out_channels == 3 and small[6].in_features == 3 * 16
    _assert_same_function(model, small, torch.randn(16, 3, 8, 8))


def test_conv1d_constant_channel_into_padded_conv_stays_unless_zero():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Conv1d(4, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 8, 2))
    with torch.no_grad():
        model[0].weight[1:3] = 0
        model[0].bias[1] = 0.7  # relu(0.7) != 0: cannot fold across zero padding
        model[0].bias[2] = -0.7  # relu(-0.7) == 0: nothing to fold
    small = remove_pruned_neurons(model)
    assert small[0].out_channels == 3 and small[2].in_channels == 3
    _assert_same_function(model, small, torch.randn(8, 2, 10))


def test_unread_units_go_and_removal_cascades():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    with torch.no_grad():
        model[4].weight[:, 5] = 0  # unit 5 of the middle layer is never read
        model[0].weight[2] = 0  # unit 2 of the first layer is constant tanh(bias)
        model[2].weight[7] = 0
        model[2].weight[7, 2] = 1.5  # ... and middle unit 7 reads only that constant unit
    small = remove_pruned_neurons(model)
    assert small[0].out_features == 7
    assert small[2].weight.shape == (6, 7)
    assert small[4].weight.shape == (4, 6)
    _assert_same_function(model, small, torch.randn(32, 6))


def test_round_trip_and_no_op_on_dense_model():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2))
    small = remove_pruned_neurons(model)
    assert small is not model and _params(small) == _params(model)
    _assert_same_function(model, small, torch.randn(4, 5))


def test_output_units_stay_and_a_layer_keeps_one_unit():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[2].weight[1] = 0
    small = remove_pruned_neurons(model)
    assert small[0].out_features == 1 and small[2].weight.shape == (2, 1)
    _assert_same_function(model, small, torch.randn(4, 3))


def test_unsupported_modules_are_named():
    model = nn.Sequential(nn.Linear(3, 4), nn.MaxPool1d(2), nn.Linear(2, 2))
    with pytest.raises(UnsupportedLayerError, match="'1'.*MaxPool1d"):
        remove_pruned_neurons(model)
    with pytest.raises(UnsupportedLayerError, match="Sequential"):
        remove_pruned_neurons(nn.Linear(3, 3))


def test_a_graph_without_dead_units_skips_the_torch_round_trip(monkeypatch):
    import numpy as np

    import hwprune.prune.structured as structured
    from hwprune.ir.graph import Graph
    from hwprune.ir.layers import Dense, ReLU
    from hwprune.pipeline import remove_dead_neurons

    rng = np.random.default_rng(0)
    graph = Graph.chain("g", (4,), (Dense("a", weight=rng.normal(size=(5, 4)), bias=np.zeros(5)), ReLU("r"),
                              Dense("b", weight=rng.normal(size=(3, 5)), bias=np.zeros(3))))
    monkeypatch.setattr(structured, "remove_pruned_neurons", lambda module: pytest.fail("torch round trip"))
    assert remove_dead_neurons(graph) == (graph, {})
    monkeypatch.undo()
    w = graph.layers[2].weight.copy()
    w[:, 1] = 0.0  # unit 1 of layer a: nothing reads it
    dead = Graph.chain("g", (4,), (graph.layers[0], graph.layers[1], Dense("b", weight=w, bias=np.zeros(3))))
    smaller, removed = remove_dead_neurons(dead)
    assert removed == {"a": 1}
