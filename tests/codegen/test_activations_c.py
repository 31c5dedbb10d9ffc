"""LeakyReLU, PReLU, HardSigmoid, Sigmoid, Tanh, Selu and SiLU (Sigmoid and Multiply): the integer
reference against exact
rationals and against the host C build (bit for bit, layer by layer), the quantized model
close to torch, and the errors for types hls4ml's arithmetic cannot follow."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.errors import ModelError, ShapeError
from hwprune.harness.engines import HostCEngine
from hwprune.ir import Dense, Graph, HardSigmoid, LeakyReLU, Selu, Sigmoid, Tanh, load_graph, save_graph
from hwprune.quant.calibrate import QuantConfig, calibrate
from hwprune.ir.fixed import Fixed, to_real
from hwprune.reference import KERNELS
from hwprune.reference.activations import table, table_index

ENGINE = HostCEngine(trace=True)
torch = pytest.importorskip("torch")
nn = torch.nn


def _cast(v: Fraction, t: Fixed) -> int:
    """ap_fixed's assignment of the exact value ``v`` (scale, round, then overflow)."""
    scaled = v * 2 ** t.frac_bits + (Fraction(1, 2) if t.rounding.value == "RND" else 0)
    q = math.floor(scaled)
    if t.overflow.value == "SAT":
        return max(t.min_int, min(t.max_int, q))
    q %= 1 << t.width
    return q - (1 << t.width) if t.signed and q > t.max_int else q


def _torch_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.LeakyReLU(0.1), nn.Linear(10, 10), nn.Sigmoid(), nn.Linear(10, 10),
                          nn.Tanh(), nn.Linear(10, 10), nn.PReLU(10), nn.Linear(10, 10), nn.Hardsigmoid(),
                          nn.Linear(10, 10), nn.SiLU(), nn.Linear(10, 4))
    with torch.no_grad():
        model[7].weight.copy_(torch.linspace(-0.4, 0.6, 10))
    return model.double().eval()


@pytest.fixture(scope="module")
def model():
    from hwprune.frontends.torch import from_torch

    net = _torch_model()
    return net, from_torch(net, name="acts")


@pytest.mark.parametrize("bits", [8, 16])
def test_reference_equals_host_c_layer_by_layer(model, tmp_path, bits):
    _, graph = model
    rng = np.random.default_rng(bits)
    q = calibrate(graph, rng.normal(size=(200, 6)) * 2, QuantConfig(bits, bits))
    x_int = reference.quantize_input(q, rng.normal(size=(40, 6)) * 3)
    export_c(q, tmp_path / "c", "auto")
    run = ENGINE.run(tmp_path / "c", x_int)
    expected = reference.run(q, x_int, trace=True)
    assert [name for name, _ in run.trace] == [layer.name for layer in q.layers]
    for (name, want), (_, got) in zip(expected, run.trace):
        bad = np.argwhere(want != got.reshape(want.shape))
        assert not len(bad), f"layer {name!r} vector/element {bad[0]}: reference {want[tuple(bad[0])]}, " \
                             f"C {got.reshape(want.shape)[tuple(bad[0])]}"
    assert np.array_equal(run.outputs, expected[-1][1])


def test_quantized_model_is_close_to_torch(model):
    net, graph = model
    rng = np.random.default_rng(5)
    q = calibrate(graph, rng.normal(size=(500, 6)), QuantConfig(16, 16))
    x = rng.normal(size=(100, 6))
    want = net(torch.tensor(x)).detach().numpy()
    # 16-bit types, 1024-entry tables over [-8, 8) and [-4, 4): a step of 1/64 or 1/128 in x.
    assert np.abs(reference.predict(q, x) - want).max() < 0.005
    q8 = calibrate(graph, rng.normal(size=(500, 6)), QuantConfig(8, 8))
    assert np.abs(reference.predict(q8, x) - want).max() < 0.05


def test_activation_layers_survive_save_and_load(model, tmp_path):
    _, graph = model
    q = calibrate(graph, np.random.default_rng(6).normal(size=(50, 6)), QuantConfig(8, 8))
    save_graph(q, tmp_path / "g")
    back = load_graph(tmp_path / "g")
    x = reference.quantize_input(q, np.random.default_rng(7).normal(size=(20, 6)))
    assert [l.kind for l in back.layers] == [l.kind for l in q.layers]
    assert np.array_equal(reference.run(back, x), reference.run(q, x))


def test_leaky_and_hard_sigmoid_against_exact_rationals():
    in_t = Fixed(9, 4)
    x = np.arange(in_t.min_int, in_t.max_int + 1, dtype=np.int64)
    out = Fixed(7, 2, rounding="RND", overflow="SAT")
    param_t = Fixed(8, 0, rounding="RND", overflow="SAT")
    alphas = np.array([0.3046875, -0.5, 0.0078125])
    prelu = LeakyReLU("p", alpha=alphas, param_t=param_t, result_t=out)
    got = KERNELS["leaky_relu"](prelu, x[: 510].reshape(-1, 3), in_t).reshape(-1)
    for i, (q, y) in enumerate(zip(x[:510], got)):
        v = Fraction(int(q), 2 ** in_t.frac_bits)
        assert y == _cast(v if v > 0 else v * Fraction(alphas[i % 3]), out), (int(q), int(y))
    slope_t, shift_t = Fixed(16, 0, False), Fixed(2, 0, False)
    hard = HardSigmoid("h", slope=0.2, shift=0.5, slope_t=slope_t, shift_t=shift_t, result_t=Fixed(6, 1, False))
    got = KERNELS["hard_sigmoid"](hard, x[None, :], in_t)[0]
    s = Fraction(math.floor(0.2 * 2 ** 16), 2 ** 16)  # hls4ml's slope constant: TRN to ufixed<16,0>
    for q, y in zip(x, got):
        v = min(max(s * Fraction(int(q), 2 ** in_t.frac_bits) + Fraction(1, 2), Fraction(0)), Fraction(1))
        assert y == _cast(v, hard.result_t), (int(q), int(y))


def test_table_index_truncates_towards_zero_and_clamps():
    in_t = Fixed(12, 5)  # 7 fraction bits; 64 entries per unit: index = trunc(q / 2) + 512
    sig = Sigmoid("s", table_size=1024, table_t=Fixed(18, 8), result_t=Fixed(18, 8))
    x = np.array([[-2048, -3, -1, 0, 1, 3, 1020, 2047]])
    assert table_index(sig, x, in_t).tolist() == [[0, 511, 512, 512, 512, 513, 1022, 1023]]
    t = table(sig)
    assert t.shape == (1024,) and to_real(t[512], sig.table_t) == 0.5  # sigmoid(0) on the table's grid


def test_types_hls4ml_cannot_follow_are_errors():
    with pytest.raises(ShapeError, match="table_size must be a multiple of 16"):
        Sigmoid("s", table_size=1000)
    with pytest.raises(ShapeError, match="3 PReLU slopes do not match input shape"):
        Graph.chain("g", (4,), (LeakyReLU("p", alpha=np.ones(3)),))
    wide = Sigmoid("s", table_t=Fixed(18, 8), result_t=Fixed(8, 0, False))
    with pytest.raises(ModelError, match="overflows hls4ml's int table index"):
        KERNELS["sigmoid"](wide, np.zeros((1, 1), dtype=np.int64), Fixed(40, 30))
    # slope * x + shift would be ap_fixed<..., 1>: the clamp's `datareg = 1` would wrap to -1 in hls4ml.
    narrow = HardSigmoid("h", slope=0.2, shift=0.25, slope_t=Fixed(16, -2, False), shift_t=Fixed(4, -1, False),
                         result_t=Fixed(8, 1, False))
    with pytest.raises(ModelError, match="cannot hold the clamp bound 1"):
        KERNELS["hard_sigmoid"](narrow, np.zeros((1, 1), dtype=np.int64), Fixed(8, 1))


def _selu_graph() -> Graph:
    rng = np.random.default_rng(11)
    return Graph.chain("selus", (5,), (Dense("d0", rng.normal(size=(8, 5)), rng.normal(size=8)), Selu("u0"),
                                       Dense("d1", rng.normal(size=(8, 8)) * 2, rng.normal(size=8)), Selu("u1"),
                                       Dense("d2", rng.normal(size=(3, 8)), rng.normal(size=3))))


@pytest.mark.parametrize("bits", [8, 16])
def test_selu_reference_equals_host_c_and_follows_the_float_function(tmp_path, bits):
    from hwprune.quant.calibrate import float_forward

    graph = _selu_graph()
    rng = np.random.default_rng(bits)
    q = calibrate(graph, rng.normal(size=(200, 5)) * 3, QuantConfig(bits, bits))
    x = rng.normal(size=(40, 5)) * 2
    x_int = reference.quantize_input(q, x)
    export_c(q, tmp_path / "c", "auto")
    run = ENGINE.run(tmp_path / "c", x_int)
    expected = reference.run(q, x_int, trace=True)
    for (name, want), (_, got) in zip(expected, run.trace):
        bad = np.argwhere(want != got.reshape(want.shape))
        assert not len(bad), f"layer {name!r} vector/element {bad[0]}: reference {want[tuple(bad[0])]}, " \
                             f"C {got.reshape(want.shape)[tuple(bad[0])]}"
    selu_in = dict(expected)["d1"]
    assert (selu_in < 0).any() and (selu_in > 0).any()  # both branches ran
    if bits == 16:  # 1024 entries over (-8, 0]: a step of 1/128 in x, lambda to 15 fraction bits
        want = float_forward(graph, x)
        assert np.abs(reference.predict(q, x) - want).max() < 1e-3 * np.ptp(want)
    save_graph(q, tmp_path / "g")
    assert np.array_equal(reference.run(load_graph(tmp_path / "g"), x_int), expected[-1][1])


def test_selu_index_and_table():
    from hwprune.reference.activations import selu_index

    in_t = Fixed(12, 5)  # 7 fraction bits; 128 entries per unit: index = trunc(-q)
    selu = Selu("u", table_size=1024, table_t=Fixed(18, 3), result_t=Fixed(18, 3))
    assert selu_index(selu, np.array([[-1, -127, -128, -1023, -1024, -2048]]), in_t).tolist() == \
        [[1, 127, 128, 1023, 1023, 1023]]
    t = to_real(table(selu), selu.table_t)
    assert t[0] == 0 and np.all(np.diff(t) <= 0) and -1.7581 < t[-1] < -1.757  # lambda * alpha * (e^-8 - 1)
    with pytest.raises(ShapeError, match="table_size must be a multiple of 8"):
        Selu("u", table_size=1004)


@pytest.mark.parametrize("bits", [8, 16])
def test_calibrated_tables_resolve_the_input_grid(bits):
    """Calibration gives every table one entry per value of its input's grid (capped): each
    input in the table's range reads the function at its own value. At 8 bits that is fewer
    entries than hls4ml's default 1024 and the same outputs; at 16 bits a finer table."""
    from hwprune.quant.calibrate_activations import MAX_TABLE_SIZE
    from hwprune.reference.activations import selu_index

    rng = np.random.default_rng(5)
    dense = lambda name, n, s=1: Dense(name, rng.normal(size=(n, 6)) * s, rng.normal(size=n))  # noqa: E731
    # wide inputs (fewer fraction bits) before Tanh and Selu: tables under the cap at 16 bits
    graph = Graph.chain("tables", (6,), (dense("d0", 6), Sigmoid("sig"), dense("d1", 6, 20), Tanh("tanh"),
                                         dense("d2", 6, 20), Selu("selu"), dense("d3", 3)))
    x = rng.normal(size=(100, 6)) * 2
    q = calibrate(graph, x, QuantConfig(bits, bits))
    tables = [layer for layer in q.layers if layer.kind in ("sigmoid", "tanh", "selu")]
    assert any(layer.table_size < MAX_TABLE_SIZE for layer in tables)
    for layer in tables:
        in_t = q.input_types(layer)[0]
        f = in_t.frac_bits
        assert layer.table_size == min(layer.table_width << max(f, 0), MAX_TABLE_SIZE), (layer.name, in_t)
        assert layer.table_size < 1024 if bits == 8 else layer.table_size > 1024, (layer.name, layer.table_size)
        # every input value inside the table's range: the entry it reads sits at that value exactly
        lo = -layer.table_range if layer.kind != "selu" else -layer.table_range + 1
        hi = layer.table_range if layer.kind != "selu" else 0
        v = np.arange(lo << f, hi << f, dtype=np.int64)[None, :]
        n = layer.table_size
        if layer.kind == "selu":
            at = -8 * selu_index(layer, v, in_t) / n
        else:
            at = 2 * layer.table_range * (table_index(layer, v, in_t) - n / 2) / n
        if layer.table_size < MAX_TABLE_SIZE:
            assert np.array_equal(at, v / 2.0 ** f), layer.name
        else:  # capped: a step of width / size, still finer than hls4ml's default
            assert np.abs(at - v / 2.0 ** f).max() < layer.table_width / layer.table_size, layer.name
    if bits == 8:  # hls4ml's 1024 entries hold these tables' entries among others: the same outputs
        wide = q.with_layers([layer.with_(table_size=1024) if layer in tables else layer for layer in q.layers])
        x_int = reference.quantize_input(q, x)
        assert np.array_equal(reference.run(wide, x_int), reference.run(q, x_int))


@pytest.mark.parametrize("act", [Sigmoid("a"), Tanh("a"), Selu("a"), HardSigmoid("a", 0.2, 0.5),
                                 HardSigmoid("a", 1 / 6, 0.5),
                                 LeakyReLU("a", alpha=np.array([0.1])), LeakyReLU("a", alpha=np.linspace(0, 1, 6))])
def test_dead_units_fold_through_activations(act):
    """A unit with no inputs outputs act(bias), folded into the next bias; PReLU's per-channel
    slopes tie it to its channels, so such a graph is kept whole."""
    from hwprune.prune.graph import remove_dead_neurons
    from hwprune.quant.calibrate import float_forward

    rng = np.random.default_rng(8)
    w = rng.normal(size=(6, 4))
    w[2] = 0
    g = Graph.chain("m", (4,), (Dense("d0", w, rng.normal(size=6)), act,
                                Dense("d1", rng.normal(size=(3, 6)), rng.normal(size=3))))
    smaller, removed = remove_dead_neurons(g)
    assert removed == ({} if getattr(act, "per_channel", False) else {"d0": 1})
    x = rng.normal(size=(10, 4))
    assert np.allclose(float_forward(smaller, x), float_forward(g, x), rtol=0, atol=1e-12)
