"""Pruning and QAT of graphs with branches: the torch twin of a graph computes the graph,
global magnitude pruning reaches its count over every weighted layer, tied channels go
together (removing a unit whose filters are zero leaves the function unchanged: every
column that read it went too), and QAT on a graph equals the integer reference bit for bit."""

import os

import numpy as np
import pytest
import torch

from hwprune import reference
from hwprune.errors import OptionError
from hwprune.frontends.torch import from_torch, to_torch
from hwprune.frontends.torch_twin import GraphTwin
from hwprune.prune.algorithms import TrainOptions, oneshot
from hwprune.prune.channels import candidates, channel_units, choose, remove_units
from hwprune.prune.masks import apply_masks
from hwprune.prune.structured_graph import prune_units
from hwprune.quant.calibrate import float_forward
from hwprune.qat.model import convert_qat, prepare_qat, qat_graph, recalibrate_qat
from hwprune.qat.graph import QATGraphTwin

from torch_dag_models import Inception, ResNet8, SkipMLP, randomize_batchnorm

MODELS = {
    "resnet8": (lambda: ResNet8(width=0.25, size=8), (3, 8, 8)),
    "inception": (Inception, (2, 6, 6)),
    "skip_mlp": (SkipMLP, (6,)),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request):
    torch.manual_seed(0)
    make, shape = MODELS[request.param]
    model = randomize_batchnorm(make())
    x = np.random.default_rng(0).normal(size=(24, *shape))
    return request.param, model, from_torch(model, shape), x


def test_twin_computes_the_graph_and_gives_it_back(case):
    _, model, graph, x = case
    twin = to_torch(graph)
    assert isinstance(twin, GraphTwin)
    with torch.no_grad():
        y = twin(torch.tensor(x)).numpy()
        y_torch = model.double()(torch.tensor(x)).numpy()
    model.float()
    assert np.allclose(y, float_forward(graph, x), rtol=0, atol=1e-12)
    assert np.allclose(y, y_torch, rtol=0, atol=1e-12)
    back = twin.to_graph()
    assert [layer.name for layer in back.layers] == [layer.name for layer in graph.layers]
    for a, b in zip(graph.weighted_layers(), back.weighted_layers()):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    assert set(dict(twin.named_modules())) >= {layer.name for layer in graph.weighted_layers()}


def test_removing_a_zero_unit_keeps_the_function(case):
    """A unit whose rows (and depthwise filters) are zero outputs zero everywhere: removing it,
    with every column that reads it, must not change the output."""
    name, _, graph, x = case
    units = channel_units(graph)
    assert units
    unit = units[len(units) // 2]
    layers = []
    for layer in graph.layers:
        rows = [c for tensor, c in unit.slots if tensor == layer.name]
        if layer.weighted and rows:
            weight, bias = layer.weight.copy(), layer.bias.copy()
            weight[rows], bias[rows] = 0.0, 0.0
            layer = layer.with_(weight=weight, bias=bias)
        layers.append(layer)
    zeroed = graph.with_layers(layers)
    smaller = remove_units(zeroed, [unit])
    assert smaller.total_weights < graph.total_weights
    assert np.allclose(float_forward(smaller, x), float_forward(zeroed, x), rtol=0, atol=1e-12)


def test_resnet_units_tie_both_sides_of_every_add():
    graph = from_torch(randomize_batchnorm(ResNet8(width=0.5, size=8)), (3, 8, 8))
    families = {u.family for u in channel_units(graph)}
    # the stem and stack 1's second conv meet at stack 1's Add; each stride-2 stack's conv and shortcut at theirs
    assert ("stack1_conv2_0", "stem_0") in families
    assert ("stack2_conv2_0", "stack2_shortcut_0") in families
    assert ("stack3_conv2_0", "stack3_shortcut_0") in families
    assert not any("fc" in family for family in families)  # the model's outputs stay
    units = candidates(graph, channel_units(graph), "filters")
    sizes = {f: sum(u.family == f for u in units) for f in families}
    chosen = choose(units, {f: round(0.8 * n) for f, n in sizes.items()}, "layer")
    smaller = remove_units(graph, chosen)
    for add in (layer for layer in graph.layers if layer.kind == "add"):
        shapes = [smaller.shape_of(s)[-1] for s in smaller.layer(add.name).inputs]
        assert shapes[0] == shapes[1] < graph.shape_of(add.name)[-1]
    for before, after in zip(graph.weighted_layers(), smaller.weighted_layers()):
        assert after.weight.size < before.weight.size
        assert smaller.layer_macs(after) < graph.layer_macs(before)


def test_global_magnitude_over_every_layer_of_a_dag(case):
    _, _, graph, x = case
    y = np.arange(len(x)) % 3
    result = oneshot(GraphTwin(graph, torch.float32), x.astype(np.float32), y, 0.8, scope="global", epochs=1,
                     strip=True, batch_size=8)
    pruned = result.model.to_graph()
    assert pruned.total_weights - pruned.nonzero_weights == round(0.8 * graph.total_weights)
    assert set(result.layers) == {layer.name for layer in graph.weighted_layers()}


def test_filter_pruning_shrinks_and_fine_tunes():
    torch.manual_seed(0)
    graph = from_torch(randomize_batchnorm(ResNet8(width=0.5, size=8)), (3, 8, 8))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(32, 3, 8, 8)).astype(np.float32), rng.integers(0, 10, 32)
    result = prune_units(graph, x, y, 0.5, TrainOptions(batch_size=16), "filters", "global", rounds=2, epochs=2)
    assert result.units == pytest.approx(0.5, abs=0.02)
    assert result.graph.total_weights < graph.total_weights and result.sparsity > 0.5
    assert [h["round"] for h in result.history] == [1, 2] and result.history[0]["weights"] > result.graph.total_weights
    trained = result.graph.layer("fc").weight
    assert not np.array_equal(trained, graph.layer("fc").weight)


def test_gradual_filter_removal_rises_to_the_target_before_the_last_quarter():
    torch.manual_seed(0)
    graph = from_torch(randomize_batchnorm(ResNet8(width=0.5, size=8)), (3, 8, 8))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 3, 8, 8)).astype(np.float32), rng.integers(0, 10, 16)
    result = prune_units(graph, x, y, 0.5, TrainOptions(batch_size=16), "filters", "global", epochs=4,
                         schedule="gradual")
    targets = [h["target"] for h in result.history]
    removed = [h["units_removed"] for h in result.history]
    # polynomial decay, power 3, reaching 0.5 at epoch 3 of 4 (round(0.75 * 4))
    assert targets == pytest.approx([0.5 * (1 - (2 / 3) ** 3), 0.5 * (1 - (1 / 3) ** 3), 0.5, 0.5])
    assert removed[0] < removed[1] < removed[2] == removed[3]
    assert [h["epochs"] for h in result.history] == [1, 1, 1, 1]
    assert result.units == pytest.approx(0.5, abs=0.02)
    with pytest.raises(OptionError, match="iterative or gradual"):
        prune_units(graph, x, y, 0.5, TrainOptions(), "filters", schedule="lottery")


def test_qat_on_the_fx_graph_is_the_integer_reference(case):
    name, model, graph, x = case
    bits = {"resnet8": (6, 8), "inception": (8, 8), "skip_mlp": (4, 6)}[name]
    twin = GraphTwin(graph)
    weighted = graph.weighted_layers()[0].name
    mask = torch.rand(twin.layer_module(weighted).weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    apply_masks(twin, {weighted: mask})
    for source in (model, twin):  # the fx-traced module, and a masked twin
        qat = prepare_qat(source, *bits, calibration_x=x)
        assert isinstance(qat, QATGraphTwin)
        opt = torch.optim.Adam(qat.parameters(), lr=1e-2)
        for _ in range(3):  # training moves the weights; the types stay fixed
            loss = qat(torch.tensor(x, dtype=torch.float32)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert any(p.grad is not None and bool((p.grad != 0).any()) for p in qat.parameters())
        recalibrate_qat(qat, x, *bits)
        with torch.no_grad():
            y = qat(torch.tensor(x)).numpy()
        quantized = qat_graph(qat, "net")
        expected = reference.predict(quantized, x)
        assert np.array_equal(y, expected), np.argwhere(y != expected)[:5]
        if source is twin:
            assert not convert_qat(qat).layer_module(weighted).weight[~mask].any()  # pruned weights stayed zero


def test_keras_functional_graph_trains_channels_last():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    from hwprune.frontends.keras import from_keras_model

    layers = keras.layers
    inp = keras.Input((6, 6, 2))
    h = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    h = layers.Add()([h, layers.Conv2D(4, 1)(h)])
    out = layers.Dense(3)(layers.Flatten()(layers.Concatenate()([h, layers.Conv2D(2, 1)(inp)])))
    model = keras.Model(inp, out)
    graph = from_keras_model(model)
    x = np.random.default_rng(2).normal(size=(8, 6, 6, 2))
    twin = GraphTwin(graph)
    with torch.no_grad():
        y = twin(torch.tensor(x)).numpy()
    assert np.allclose(y, np.asarray(model.predict(x, verbose=0)), atol=1e-5)
    smaller = remove_units(graph, candidates(graph, channel_units(graph), "filters")[:2])
    assert GraphTwin(smaller)(torch.tensor(x)).shape == (8, 3)


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_squeeze_excite_product_broadcasts_per_channel(layout):
    """A Dense of pooled channels scales a conv's channels: the twin broadcasts as the IR
    does, the Multiply ties the conv's filters to the Dense's units, QAT stays exact."""
    from hwprune.ir import Conv2D, Dense, Flatten, Graph, GraphInput
    from hwprune.ir.layers import Multiply
    from hwprune.ir.spatial import GlobalAvgPool2D

    rng = np.random.default_rng(0)
    layers = (Conv2D("conv", rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4), padding=((1, 1), (1, 1)),
                     inputs=("input",)),
              GlobalAvgPool2D("squeeze", inputs=("conv",)),
              Dense("excite", rng.normal(size=(4, 4)), rng.normal(size=4), inputs=("squeeze",)),
              Multiply("scale", inputs=("conv", "excite")),
              Flatten("flat", inputs=("scale",)),
              Dense("fc", rng.normal(size=(3, 100)), np.zeros(3), inputs=("flat",)))
    graph = Graph("se", (GraphInput("input", (5, 5, 2)),), layers, input_layout=layout)
    x = rng.normal(size=(6, 5, 5, 2) if layout == "channels_last" else (6, 2, 5, 5))
    with torch.no_grad():
        assert np.allclose(GraphTwin(graph)(torch.tensor(x)).numpy(), float_forward(graph, x), rtol=0, atol=1e-12)
    assert {u.family for u in channel_units(graph)} == {("conv", "excite")}
    qat = prepare_qat(graph, 8, 8, calibration_x=x)
    with torch.no_grad():
        assert np.array_equal(qat(torch.tensor(x)).numpy(), reference.predict(qat_graph(qat), x))


def _small_resnet():
    """A stem and a 1x1 conv tied by an Add (both read by a 1x1 conv), a 3x3 conv without
    padding after the Add, a Dense after a flatten: every consumer folds a constant exactly."""
    from hwprune.ir import Conv2D, Dense, Flatten, Graph, GraphInput
    from hwprune.ir.layers import Add, ReLU

    rng = np.random.default_rng(3)
    layers = (Conv2D("stem", rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4), padding=((1, 1), (1, 1)),
                     inputs=("input",)),
              ReLU("relu0", inputs=("stem",)),
              Conv2D("c1", rng.normal(size=(4, 1, 1, 4)), rng.normal(size=4), inputs=("relu0",)),
              ReLU("relu1", inputs=("c1",)),
              Conv2D("c2", rng.normal(size=(4, 1, 1, 4)), rng.normal(size=4), inputs=("relu1",)),
              Add("add", inputs=("relu0", "c2")),
              ReLU("relu2", inputs=("add",)),
              Conv2D("c3", rng.normal(size=(3, 3, 3, 4)), rng.normal(size=3), inputs=("relu2",)),
              ReLU("relu3", inputs=("c3",)),
              Flatten("flat", inputs=("relu3",)),
              Dense("fc", rng.normal(size=(3, 48)), rng.normal(size=3), inputs=("flat",)))
    return Graph("small_resnet", (GraphInput("input", (6, 6, 2)),), layers), rng.normal(size=(8, 6, 6, 2))


def _skip_mlp():
    torch.manual_seed(0)
    return from_torch(randomize_batchnorm(SkipMLP()), (6,)), np.random.default_rng(0).normal(size=(8, 6))


def _resnet8():
    torch.manual_seed(0)
    graph = from_torch(randomize_batchnorm(ResNet8(width=0.25, size=8)), (3, 8, 8))
    return graph, np.random.default_rng(0).normal(size=(4, 3, 8, 8))


@pytest.mark.parametrize("make,sign", [(_small_resnet, 1), (_skip_mlp, 1), (_resnet8, -1)],
                         ids=["small_resnet", "skip_mlp", "resnet8_relu_zero"])
def test_removing_a_unit_of_zero_weights_folds_its_bias(make, sign):
    """A unit whose producer rows have zero weights but a nonzero bias outputs act(bias) (summed
    over an Add's operands): its consumers' biases take it, so removing the unit keeps the
    function; dropping the constant with the unit would not. A negative bias under ReLU is a
    constant 0, exact even for ResNet-8's padded 3x3 consumers."""
    graph, x = make()
    units = channel_units(graph)
    assert units
    live = 0
    for chosen in [[u] for u in units] + [choose(units, len(units), "global")]:
        rows = {}
        for u in chosen:
            for name, r in u.producers:
                rows.setdefault(name, []).append(r)
        layers = []
        for layer in graph.layers:
            if layer.name in rows:
                weight, bias = layer.weight.copy(), layer.bias.copy()
                weight[rows[layer.name]] = 0.0
                bias[rows[layer.name]] = sign * (np.abs(bias[rows[layer.name]]) + 0.5)  # past every ReLU, or 0
                layer = layer.with_(weight=weight, bias=bias)
            layers.append(layer)
        zeroed = graph.with_layers(layers)
        smaller = remove_units(zeroed, chosen)
        assert smaller.total_weights < graph.total_weights
        expected = float_forward(zeroed, x)
        assert np.allclose(float_forward(smaller, x), expected, rtol=0, atol=1e-12)
        # the constants are live: the same rows without their bias compute something else,
        # which is what dropping the bias with the unit used to give
        silent = zeroed.with_layers([layer.with_(bias=np.where(np.isin(np.arange(layer.out_channels),
                                                                       rows[layer.name]), 0.0, layer.bias))
                                     if layer.name in rows else layer for layer in zeroed.layers])
        live += not np.allclose(float_forward(silent, x), expected, rtol=0, atol=1e-12)
    assert live == (len(units) + 1 if sign > 0 else 0)
