import itertools
import json

import numpy as np
import pytest

from hwprune.errors import ModelError, ShapeError, WeightError
from hwprune.ir import (
    AvgPool1D, AvgPool2D, Conv1D, Conv2D, Dense, Flatten, GlobalAvgPool1D, GlobalAvgPool2D, Graph, MaxPool1D,
    MaxPool2D, ReLU, load_graph, save_graph,
)
from hwprune.ir.fixed import Fixed

T8 = Fixed.parse("fixed<8,3,RND,SAT>")
ACC = Fixed.parse("fixed<20,8,TRN,WRAP>")


def cnn(rng, quantized=False):
    types = dict(weight_t=T8, bias_t=ACC, accum_t=ACC, result_t=T8) if quantized else {}
    pool_t = dict(accum_t=ACC, result_t=T8) if quantized else {}
    layers = (
        Conv2D("c0", rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4), stride=(1, 1), padding=((1, 1), (1, 1)),
               **types),
        ReLU("r0", **({"result_t": T8} if quantized else {})),
        MaxPool2D("p0", pool_size=(2, 2), **pool_t),
        Conv2D("dw", rng.normal(size=(8, 3, 3, 1)), None, stride=(2, 1), padding=((0, 1), (2, 0)), depthwise=True,
               **types),
        AvgPool2D("a0", pool_size=(2, 2), stride=(1, 1), padding=((1, 0), (0, 1)), count_pad=True, **pool_t),
        Flatten("f"),
        Dense("fc", rng.normal(size=(3, 48)), rng.normal(size=3), **types),
    )
    return Graph.chain("cnn", (8, 6, 2), layers, T8 if quantized else None)


def test_shapes_channels_last(rng):
    g = cnn(rng)
    assert [g.shape_of(l.name) for l in g] == [(8, 6, 4), (8, 6, 4), (4, 3, 4), (2, 3, 8), (2, 3, 8), (48,), (3,)]
    g1 = Graph.chain("g1", (16, 3), (
        Conv1D("c", np.ones((5, 3, 3)), None, stride=(2,), padding=((1, 0),)),
        AvgPool1D("a", pool_size=(2,)),
        MaxPool1D("m", pool_size=(3,), stride=(1,), padding=((1, 1),)),
        GlobalAvgPool1D("g"),
    ))
    assert [g1.shape_of(l.name) for l in g1] == [(8, 5), (4, 5), (4, 5), (5,)]  # (16 + 1 - 3) // 2 + 1 = 8
    assert Graph.chain("g2", (5, 4, 3), (GlobalAvgPool2D("g"),)).output_shape == (3,)
    conv = g.layers[0]
    assert conv.kernel_size == (3, 3) and conv.in_channels_per_group == 2 and conv.out_channels == 4
    assert conv.filter_matrix.shape == (4, 18)
    assert np.array_equal(conv.filter_matrix[1], conv.weight[1].ravel())  # (kh, kw, cin) contiguous
    assert g.layers[3].multiplier(4) == 2


def test_bad_geometry_is_named(rng):
    with pytest.raises(ShapeError, match=r"layer 'c'.*expects 2 input channels"):
        Graph.chain("g", (5, 5, 3), (Conv2D("c", np.ones((1, 3, 3, 2)), None),))
    with pytest.raises(ShapeError, match=r"layer 'c'.*\(height, width, channels\)"):
        Graph.chain("g", (5, 3), (Conv2D("c", np.ones((1, 3, 3, 3)), None),))
    with pytest.raises(ShapeError, match=r"layer 'c'.*does not fit"):
        Graph.chain("g", (2, 1), (Conv1D("c", np.ones((1, 3, 1)), None),))
    with pytest.raises(ShapeError, match=r"layer 'd'.*multiple"):
        Graph.chain("g", (5, 3), (Conv1D("d", np.ones((4, 3, 1)), None, depthwise=True),))
    with pytest.raises(ShapeError, match="one input channel per filter"):
        Conv1D("d", np.ones((4, 3, 2)), None, depthwise=True)
    with pytest.raises(ShapeError, match=r"Conv2D weight must be 4-D \(out, kh, kw, in_per_group\)"):
        Conv2D("c", np.ones((4, 3, 2)), None)
    with pytest.raises(ShapeError, match="stride must be 2 integers >= 1"):
        Conv2D("c", np.ones((1, 1, 1, 1)), None, stride=(0, 1))
    with pytest.raises(ShapeError, match="padding must be 1"):
        Conv1D("c", np.ones((1, 1, 1)), None, padding=((1, -1),))
    with pytest.raises(ShapeError, match="smaller than the pool size"):
        MaxPool2D("p", pool_size=(2, 2), padding=((0, 0), (2, 0)))
    with pytest.raises(WeightError, match=r"layer 'c'.*non-finite"):
        Conv1D("c", np.full((1, 1, 1), np.inf), None)
    with pytest.raises(ShapeError, match="expects input shape"):
        Graph.chain("g", (4, 4, 1), (Conv2D("c", np.ones((2, 3, 3, 1)), None), Flatten("f"), Dense("d", np.ones((2, 9)), None)))


def brute_force_macs(layer, input_shape, nonzero_only):
    """Count every (output position, filter, tap inside the input, channel) product."""
    out = layer.output_shape(input_shape)
    spatial_in, cin = input_shape[:-1], input_shape[-1]
    count = 0
    for pos in itertools.product(*(range(n) for n in out[:-1])):
        for o in range(layer.out_channels):
            for tap in itertools.product(*(range(k) for k in layer.kernel_size)):
                src = [p * s - pad[0] + t for p, s, pad, t in zip(pos, layer.stride, layer.padding, tap)]
                if all(0 <= i < n for i, i_n in zip(src, spatial_in) for n in [i_n]):
                    w = layer.weight[(o, *tap)]
                    count += int(np.count_nonzero(w)) if nonzero_only else w.size
    return count


@pytest.mark.parametrize("case", range(6))
def test_macs_count_every_product_inside_the_input(case):
    rng = np.random.default_rng(case)
    rank = 1 + case % 2
    k = tuple(int(v) for v in rng.integers(1, 4, size=rank))
    cin, cout = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    w = rng.normal(size=(cout, *k, cin)) * (rng.random((cout, *k, cin)) < 0.5)
    pad = tuple((int(a), int(b)) for a, b in rng.integers(0, 3, size=(rank, 2)))
    stride = tuple(int(s) for s in rng.integers(1, 3, size=rank))
    cls = Conv1D if rank == 1 else Conv2D
    layer = cls("c", w, None, stride=stride, padding=pad)
    shape = (*(int(n) for n in rng.integers(3, 7, size=rank)), cin)
    g = Graph.chain("g", shape, (layer, Flatten("f")))
    assert g.macs == g.layer_macs("c") == brute_force_macs(layer, shape, False)
    assert g.nonzero_macs == brute_force_macs(layer, shape, True)
    assert g.total_weights == w.size and g.nonzero_weights == np.count_nonzero(w)


def test_graph_figures_cover_every_weighted_layer(rng):
    g = cnn(rng)
    assert [l.name for l in g.weighted_layers()] == ["c0", "dw", "fc"]
    assert [l.name for l in g.dense_layers()] == ["fc"]
    assert g.total_weights == 4 * 9 * 2 + 8 * 9 + 3 * 48
    # c0: 'same' padding on 8x6, 3x3 kernel: per offset the windows inside are 7, 8, 7 and 5, 6, 5.
    assert g.layer_macs("c0") == (7 + 8 + 7) * (5 + 6 + 5) * 4 * 2
    assert g.layer_macs("fc") == 3 * 48 and g.layer_macs(g.layers[2]) == 0
    assert "c0" in g.summary() and "72/72 nonzero" in g.summary()


@pytest.mark.parametrize("quantized", [False, True])
def test_conv_graph_round_trips_through_disk(rng, tmp_path, quantized):
    g = cnn(rng, quantized)
    save_graph(g, tmp_path)
    meta = json.loads((tmp_path / "graph.json").read_text())
    assert meta["layers"][3]["padding"] == [[0, 1], [2, 0]] and meta["layers"][3]["depthwise"] is True
    back = load_graph(tmp_path)
    assert [back.shape_of(l.name) for l in back] == [g.shape_of(l.name) for l in g] and back.is_quantized == quantized
    for a, b in zip(g.layers, back.layers):
        assert type(a) is type(b) and a.name == b.name
        assert {k: str(v) for k, v in a.types().items()} == {k: str(v) for k, v in b.types().items()}
        for key, value in a.arrays().items():
            assert np.array_equal(value, b.arrays()[key])
        for key in ("stride", "padding", "pool_size", "depthwise", "count_pad"):
            assert getattr(a, key, None) == getattr(b, key, None)
    if quantized:
        assert [str(back.type_of(l.name)) for l in back] == [str(g.type_of(l.name)) for l in g]


def test_unknown_conv_key_is_refused(rng, tmp_path):
    save_graph(cnn(rng), tmp_path)
    meta = json.loads((tmp_path / "graph.json").read_text())
    meta["layers"][0]["dilation"] = [2, 2]
    (tmp_path / "graph.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"unknown keys \['dilation'\]"):
        load_graph(tmp_path)
