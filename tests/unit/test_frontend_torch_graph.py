"""torch modules and .pt2 programs that are graphs (residual adds, concatenations,
products) -> IR graphs, with torch as the oracle of the float function."""

import numpy as np
import pytest
import torch
from torch import nn

from hwprune.errors import UnsupportedLayerError
from hwprune.frontends.torch import from_torch
from hwprune.frontends.torch_export import load_exported_program
from hwprune.quant.calibrate import float_forward
from torch_dag_models import Inception, ResNet8, SkipMLP, randomize_batchnorm

MODELS = {
    "resnet8": (lambda: ResNet8(width=0.25, size=8), (3, 8, 8)),
    "inception": (Inception, (2, 6, 6)),
    "skip_mlp": (SkipMLP, (6,)),
}


def torch_out(model, x):
    with torch.no_grad():
        return model(torch.tensor(x, dtype=torch.float32)).double().numpy()


@pytest.mark.parametrize("kind", list(MODELS))
def test_graph_models_from_fx_and_pt2_equal_torch(kind, tmp_path):
    make, shape = MODELS[kind]
    torch.manual_seed(0)
    model = randomize_batchnorm(make())
    x = np.random.default_rng(0).normal(size=(6, *shape))
    expected = torch_out(model, x)
    traced = from_torch(model, input_shape=shape, name=kind)
    torch.export.save(torch.export.export(model, (torch.randn(2, *shape),)), tmp_path / "m.pt2")
    exported = load_exported_program(tmp_path / "m.pt2", kind)
    for graph in (traced, exported):
        assert not graph.is_chain
        assert not any(l.kind in ("identity", "softmax") for l in graph.layers)
        assert np.abs(float_forward(graph, x) - expected).max() < 1e-5
    # the same layers either way: BatchNorm folded, Dropout gone, ReLU6/clamp as Clip
    assert [l.kind for l in traced.layers] == [l.kind for l in exported.layers]
    kinds = {l.kind for l in traced.layers}
    assert {"resnet8": {"add"}, "inception": {"concatenate", "multiply", "clip"},
            "skip_mlp": {"add", "concatenate"}}[kind] <= kinds


def test_resnet8_graph_matches_the_benchmark_architecture():
    """The traced torch ResNet-8 is layer for layer the graph benchmarks/graphs.py builds by hand."""
    from benchmarks.graphs import resnet8

    built = resnet8(np.random.default_rng(0), width=0.25)
    traced = from_torch(randomize_batchnorm(ResNet8(width=0.25)), input_shape=(3, 32, 32), name="resnet8")
    assert traced.macs == built.macs and traced.total_weights == built.total_weights

    def structure(graph):  # each layer with what it reads, independent of names and of the order of branches
        def what(name):
            producer = graph.producer(name)
            return (producer.kind if producer else "input", graph.shape_of(name))

        return sorted((l.kind, graph.shape_of(l.name), getattr(l, "stride", None), getattr(l, "padding", None),
                       sorted(what(s) for s in l.inputs)) for l in graph.layers)

    assert structure(traced) == structure(built)
    assert traced.layer("stack2_shortcut_0").kernel_size == (1, 1)


class CatAxes(nn.Module):
    """torch.cat on the width axis and on the channels (counted from the end)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 3, 1)
        self.b = nn.Conv2d(2, 3, (1, 3), padding=(0, 1))
        self.c = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        wide = torch.cat([self.a(x), self.b(x)], dim=3)
        return torch.cat([self.c(wide), wide], dim=-3)


def test_cat_axes_are_moved_to_channels_last(tmp_path):
    torch.manual_seed(1)
    model = CatAxes().eval()
    graph = from_torch(model, input_shape=(2, 4, 5), name="cat_axes")
    cats = [l for l in graph.layers if l.kind == "concatenate"]
    assert [c.axis for c in cats] == [1, -1] and graph.output_shape == (4, 10, 5)
    x = np.random.default_rng(1).normal(size=(3, 2, 4, 5))
    assert np.abs(graph.to_source(float_forward(graph, x)) - torch_out(model, x)).max() < 1e-5


class Gelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return x + nn.functional.gelu(self.fc(x))


class SharedBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.fc2, self.fc3 = nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2), nn.Linear(4, 2)

    def forward(self, x):
        y = self.bn(torch.relu(self.fc1(x)))
        return self.fc2(y) + self.fc3(y)


class AddConstant(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x) + 1.0


def test_a_batchnorm_read_by_two_layers_is_a_layer_of_its_own():
    torch.manual_seed(0)
    model = SharedBatchNorm().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(0.2, 0.8), model.bn.bias.uniform_(-1.0, 1.0)
    g = from_torch(model, (4,))
    assert [layer.kind for layer in g.layers].count("batchnorm") == 1
    x = np.random.default_rng(0).normal(size=(16, 4))
    with torch.no_grad():
        want = model(torch.tensor(x, dtype=torch.float32)).double().numpy()
    assert np.abs(float_forward(g, x) - want).max() < 1e-5


@pytest.mark.parametrize("model, message", [
    (Gelu(), r"^node 'gelu' \(call_function gelu\) is not supported; hwprune reads"),
    (AddConstant(), r"^node 'add' \(call_function add\): add is supported only of tensors computed by the model"),
])
def test_unsupported_graph_nodes_are_named(model, message):
    with pytest.raises(UnsupportedLayerError, match=message) as info:
        from_torch(model.eval())
    assert "\n" not in str(info.value)


def test_unsupported_node_in_a_pt2_graph_is_named(tmp_path):
    torch.export.save(torch.export.export(Gelu().eval(), (torch.randn(2, 4),)), tmp_path / "t.pt2")
    with pytest.raises(UnsupportedLayerError, match=r"node 'gelu' \(aten\.gelu\.default\) is not supported") as info:
        load_exported_program(tmp_path / "t.pt2")
    assert "\n" not in str(info.value)


def test_relu6_hardtanh_and_padding_chain_loads_safely_as_clip(tmp_path, rng):
    from hwprune.frontends.torch import load_torch_model, to_torch

    torch.manual_seed(2)
    model = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(2, 3, 3, stride=2), nn.ReLU6(),
                          nn.Conv2d(3, 3, 3, padding=1, groups=3), nn.Hardtanh(-0.5, 0.25), nn.Flatten(),
                          nn.Linear(27, 2)).eval()
    torch.save(model, tmp_path / "clip.pt")
    graph = from_torch(load_torch_model(tmp_path / "clip.pt"), input_shape=(2, 6, 6), name="clip")
    assert [l.kind for l in graph.layers] == ["conv2d", "clip", "conv2d", "clip", "flatten", "dense"]
    assert [(l.min_value, l.max_value) for l in graph.layers if l.kind == "clip"] == [(0.0, 6.0), (-0.5, 0.25)]
    assert graph.layers[2].depthwise
    x = rng.normal(size=(4, 2, 6, 6)) * 3
    assert np.abs(float_forward(graph, x) - torch_out(model, x)).max() < 1e-5
    back = from_torch(to_torch(graph), graph.source_input_shape, graph.name)
    assert np.array_equal(float_forward(back, x), float_forward(graph, x))


def test_one_shot_pruning_of_graphs_and_chains():
    """export --sparsity: layer-wise magnitude masks on a graph with branches, and on a conv
    chain the same weights as the masks of its whole nn.Sequential twin."""
    from hwprune.frontends.torch import to_torch
    from hwprune.prune.criteria import compute_masks
    from hwprune.prune.graph import prune_graph, remove_dead_neurons
    from hwprune.prune.masks import apply_masks, strip_masks

    torch.manual_seed(3)
    resnet = from_torch(randomize_batchnorm(ResNet8(width=0.25, size=8)), input_shape=(3, 8, 8), name="r")
    pruned = prune_graph(resnet, 0.5)
    for before, after in zip(resnet.weighted_layers(), pruned.weighted_layers()):
        kept = after.weight != 0
        assert kept.sum() == before.weight.size - round(0.5 * before.weight.size), after.name
        assert np.abs(before.weight[~kept]).max() <= np.abs(before.weight[kept]).min()
    assert remove_dead_neurons(pruned)[1] == {}  # units feeding an Add stay
    chain = from_torch(nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(36, 3)).eval(),
                       input_shape=(2, 5, 5), name="c")
    twin = to_torch(chain)
    apply_masks(twin, compute_masks(twin, 0.6, method="magnitude", scope="layer"))
    expected = from_torch(strip_masks(twin), chain.source_input_shape, chain.name)
    for a, b in zip(prune_graph(chain, 0.6).weighted_layers(), expected.weighted_layers()):
        assert np.array_equal(a.weight, b.weight), a.name


class FunctionalPools(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        y = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        y = nn.functional.avg_pool2d(y, kernel_size=2, stride=2) + nn.functional.max_pool2d(y, 2, 2)
        return self.fc(torch.flatten(y, 1))


def test_functional_pooling_and_a_flatten_of_a_sum(rng):
    torch.manual_seed(4)
    model = FunctionalPools().eval()
    graph = from_torch(model, input_shape=(2, 8, 8), name="pools")
    assert [l.kind for l in graph.layers] == ["conv2d", "relu", "maxpool2d", "avgpool2d", "maxpool2d", "add",
                                              "flatten", "dense"]
    x = rng.normal(size=(3, 2, 8, 8))
    assert np.abs(float_forward(graph, x) - torch_out(model, x)).max() < 1e-5


class LeNetView(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.features = features
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(features, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).view(-1, self.features))


def test_view_minus_one_n_is_a_flatten_only_when_n_is_one_example(rng):
    model = LeNetView(2 * 4 * 4).eval()
    graph = from_torch(model, input_shape=(1, 6, 6), name="lenet")
    x = rng.normal(size=(3, 1, 6, 6))
    assert np.abs(float_forward(graph, x) - torch_out(model, x)).max() < 1e-5
    with pytest.raises(UnsupportedLayerError, match=r"module 'view' \(view\): -1, 16 is not one example's 32 values"):
        from_torch(LeNetView(16).eval(), input_shape=(1, 6, 6))


class Activations(nn.Module):
    """Sigmoid, Tanh, LeakyReLU, PReLU per channel, Hardsigmoid and SiLU on two branches."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.prelu = nn.PReLU(3)
        self.act = nn.Sequential(nn.LeakyReLU(0.2), nn.Hardsigmoid(), nn.SiLU())

    def forward(self, x):
        y = self.prelu(self.conv(x))
        return torch.cat([torch.sigmoid(y) * torch.tanh(y), self.act(y)], 1)


def test_activations_in_a_graph_from_fx_and_pt2(tmp_path, rng):
    torch.manual_seed(5)
    model = Activations().eval()
    with torch.no_grad():
        model.prelu.weight.copy_(torch.tensor([0.1, -0.3, 0.5]))
    x = rng.normal(size=(4, 2, 5, 5)) * 3
    torch.export.save(torch.export.export(model, (torch.randn(2, 2, 5, 5),)), tmp_path / "a.pt2")
    for graph in (from_torch(model, input_shape=(2, 5, 5)), load_exported_program(tmp_path / "a.pt2")):
        assert {"sigmoid", "tanh", "leaky_relu", "hard_sigmoid", "multiply", "concatenate"} <= {
            l.kind for l in graph.layers}
        got = graph.to_source(float_forward(graph, x))
        assert np.abs(got - torch_out(model, x)).max() < 1e-5


class FunctionalActivations(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 6), nn.Linear(6, 3)

    def forward(self, x):
        h = self.fc1(x)
        h = torch.nn.functional.leaky_relu(h, 0.2) + torch.nn.functional.hardsigmoid(h)
        return self.fc2(torch.nn.functional.selu(h) * torch.nn.functional.silu(h))


def test_functional_activations_are_read_as_their_modules():
    torch.manual_seed(0)
    model = FunctionalActivations().eval()
    g = from_torch(model, (4,))
    assert {"leaky_relu", "hard_sigmoid", "selu", "sigmoid", "multiply"} <= {layer.kind for layer in g.layers}
    x = np.random.default_rng(0).normal(size=(16, 4))
    with torch.no_grad():
        want = model(torch.tensor(x, dtype=torch.float32)).double().numpy()
    assert np.abs(float_forward(g, x) - want).max() < 1e-5
