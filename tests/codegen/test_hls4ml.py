"""hls4ml backend: conversion, checks and the written project, without a compiler.

C simulation (g++) runs in tests/e2e/test_cli_hls4ml.py, on a model pruned by hwprune prune.
"""

import shutil

import numpy as np
import pytest

pytest.importorskip("hls4ml")

from hwprune import reference  # noqa: E402
from hwprune.backends.hls4ml import export_hls4ml, read_summary  # noqa: E402
from hwprune.backends.hls4ml.compressed import coo_entries  # noqa: E402
from hwprune.backends.hls4ml.convert import build_model  # noqa: E402
from hwprune.errors import ModelError, OptionError  # noqa: E402
from hwprune.hls4ml_options import HlsOptions, check_part  # noqa: E402
from hwprune.ir.graph import Graph  # noqa: E402
from hwprune.ir.io import save_graph  # noqa: E402
from hwprune.ir.layers import Dense, ReLU, Softmax  # noqa: E402
from hwprune.quant.calibrate import QuantConfig, calibrate  # noqa: E402


def _pruned_mlp(sparsity=0.9, seed=0, sizes=(12, 20, 6)) -> Graph:
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in))
        w[rng.random(w.shape) < sparsity] = 0.0
        layers.append(Dense(f"fc{i}", weight=w, bias=rng.normal(0, 0.3, n_out)))
        layers.append(ReLU(f"relu{i}"))
    layers[-1] = Softmax("softmax")
    return Graph.chain("tiny", (sizes[0],), tuple(layers))


@pytest.fixture(scope="module")
def quantized():
    x = np.random.default_rng(1).standard_normal((300, 12))
    return calibrate(_pruned_mlp(), x, QuantConfig(8, 8)), x


def test_every_type_is_explicit_and_read_back(quantized, tmp_path):
    graph, _ = quantized
    model, conversion = build_model(graph, HlsOptions(), tmp_path / "p", "tiny")
    nodes = {node.name: node for node in model.get_layers()}
    assert conversion.skipped == ("softmax",)  # the project ends at the logits
    for layer in graph.layers[:-1]:
        for key, t in layer.types().items():
            p = nodes[layer.name].types[key].precision
            assert (p.width, p.integer, p.signed) == (t.width, t.int_bits, t.signed)


def test_an_invalid_reuse_factor_is_an_error_not_a_silent_replacement(quantized, tmp_path):
    graph, _ = quantized
    with pytest.raises(OptionError, match=r"reuse factor 7 is not valid.*valid reuse factors are \[1, 2"):
        build_model(graph, HlsOptions(strategy="resource", reuse_factor=7), tmp_path / "p", "tiny")


@pytest.mark.parametrize("part", ["xc7z020clg400-1", "xcvu13p-flga2577-2-e", "xczu9eg-ffvb1156-2-e", "xcu250-figd2104-2L-e"])
def test_known_parts(part):
    assert check_part(part) == part


@pytest.mark.parametrize("part", ["", "virtex", "xc9z999", "ep4ce22f17c6"])
def test_unknown_parts(part):
    with pytest.raises(OptionError, match="unknown FPGA part"):
        HlsOptions(part=part)


def test_da_needs_reuse_one():
    with pytest.raises(OptionError, match="reuse-factor 1"):
        HlsOptions(strategy="da", reuse_factor=2)


def test_coo_entries_hold_exactly_the_nonzero_weights(quantized):
    graph, _ = quantized
    layer = graph.layers[0]
    rows, cols, values = coo_entries(layer)
    rebuilt = np.zeros(layer.weight.shape, dtype=np.int64)
    rebuilt[cols, rows] = values
    from hwprune.ir.fixed import from_grid

    assert np.array_equal(rebuilt, from_grid(layer.weight, layer.weight_t))
    assert len(values) == np.count_nonzero(layer.weight)


def test_a_narrow_saturating_accumulator_refuses_resource(quantized, tmp_path):
    graph, x = quantized
    dense = graph.layers[0]
    narrow = dense.with_(accum_t=dense.accum_t.with_(width=dense.accum_t.width - 4,
                                                     int_bits=dense.accum_t.int_bits - 4, overflow="SAT"))
    graph = graph.with_layers([narrow, *graph.layers[1:]])
    xi = reference.quantize_input(graph, x[:4])
    with pytest.raises(OptionError, match="summation order"):
        export_hls4ml(graph, tmp_path / "p", HlsOptions(strategy="resource"), xi, reference.run(graph, xi))


@pytest.fixture(scope="module")
def projects(quantized, tmp_path_factory):
    """The tiny pruned MLP as an export folder per strategy (graph + hls4ml project)."""
    graph, x = quantized
    xi = reference.quantize_input(graph, x)
    yi = reference.run(graph, xi)
    out = {}
    for name, options in {"latency": HlsOptions(), "resource": HlsOptions(strategy="resource", reuse_factor=2,
                                                                          storage="compressed"),
                          "da": HlsOptions(strategy="da", tool="Vivado", part="xc7z020clg400-1")}.items():
        root = tmp_path_factory.mktemp(name)
        save_graph(graph, root)
        summary = export_hls4ml(graph, root / "hls4ml", options, xi, yi)
        out[name] = (root, summary)
    return graph, xi, yi, out


def test_pruning_reaches_the_fpga(projects):
    graph, _, _, out = projects
    nonzero = sum(int(np.count_nonzero(l.weight)) for l in graph.dense_layers())
    latency, resource, da = (out[k][1] for k in ("latency", "resource", "da"))
    assert latency["multiplications"] == nonzero < latency["multiplications_dense"]
    assert latency["weight_memory_bits"] is None  # constants in logic, no weight memory
    assert da["da_adder_cost"] > 0
    assert resource["weight_memory_bits"] <= 0.3 * resource["dense_weight_memory_bits"]
    assert all(row["storage"] == "compressed" for row in resource["layers"] if row["kind"] == "dense")


def test_projects_are_reproducible_and_carry_no_absolute_path(projects, tmp_path):
    graph, xi, yi, out = projects
    again = export_hls4ml(graph, tmp_path / "again", HlsOptions(), xi, yi)
    assert again["files"] == out["latency"][1]["files"]
    root = out["latency"][0]
    for path in (root / "hls4ml").rglob("*"):
        if path.is_file() and path.suffix in (".yml", ".tcl", ".sh", ".cpp", ".h", ".md", ".json"):
            assert str(root) not in path.read_text(errors="ignore"), path


def test_testbench_files_hold_the_vectors(projects):
    graph, xi, yi, out = projects
    tb = out["latency"][0] / "hls4ml" / "tb_data"
    x = np.loadtxt(tb / "tb_input_features.dat", ndmin=2)
    y = np.loadtxt(tb / "tb_output_predictions.dat", ndmin=2)
    from hwprune.ir.fixed import from_grid

    assert np.array_equal(from_grid(x, graph.input_t), xi)
    assert np.array_equal(from_grid(y, graph.output_t), yi)


def test_an_edited_project_is_refused(projects, tmp_path):
    root, _ = projects[3]["latency"]
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    readme = copy / "hls4ml" / "README.md"
    readme.write_text(readme.read_text() + "edited\n")
    with pytest.raises(ModelError, match="README.md differs"):
        read_summary(copy / "hls4ml")


@pytest.mark.parametrize("name,shape", [("conv1d_small", (10, 4)), ("conv2d_model", (8, 8, 1))])
def test_keras_conv_models_convert_with_their_types(name, shape, tmp_path):
    from pathlib import Path

    from hwprune.frontends.keras import from_keras_json

    data = Path(__file__).resolve().parents[1] / "data"
    graph = from_keras_json(data / f"KERAS_{name}.json", data / f"KERAS_{name}_weights.h5")
    quantized = calibrate(graph, np.random.default_rng(0).standard_normal((100, *shape)))
    model, conversion = build_model(quantized, HlsOptions(), tmp_path / "p", name)
    nodes = {node.name: node for node in model.get_layers()}
    conv = next(l for l in quantized.layers if l.kind.startswith("conv"))
    assert nodes[conv.name].class_name.startswith("Conv")
    assert nodes[conv.name].get_attr("pad_left") == conv.padding[-1][0]
    assert conversion.skipped[-1] == quantized.layers[-1].name  # the softmax


def test_the_two_compiles_of_hls4mls_build_script_run_side_by_side(monkeypatch):
    import os
    from pathlib import Path

    import hls4ml

    from hwprune.harness.hls4ml_engine import _parallel_compiles

    script = (Path(hls4ml.__file__).parent / "templates" / "vivado" / "build_lib.sh").read_text()
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    lines = _parallel_compiles(script).splitlines()
    model = next(i for i, line in enumerate(lines) if line.endswith("-c firmware/${PROJECT}.cpp -o ${PROJECT}.o &"))
    assert lines[model + 1] == "HWPRUNE_MODEL_PID=$!"
    assert lines[model + 2].endswith("-c ${PROJECT}_bridge.cpp -o ${PROJECT}_bridge.o")
    assert lines[model + 3] == "wait $HWPRUNE_MODEL_PID"  # under set -e, a failed model compile stops the build
    assert "-shared" in lines[model + 4]
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert _parallel_compiles(script) == script


def test_options_come_from_the_fpga_target_and_flags_override_them(tmp_path):
    from hwprune.backends.hls4ml.target import hls_options
    from hwprune.errors import TargetError
    from hwprune.targets import get_target, parse_target

    z = hls_options(get_target("xc7z020"))
    assert (z.part, z.clock_period_ns, z.target, z.io_type) == ("xc7z020clg400-1", 10.0, "xc7z020", "auto")
    assert hls_options(get_target("xcvu9p"), part="xcvu13p-flga2577-2-e").part == "xcvu13p-flga2577-2-e"
    assert hls_options(None, part="xc7z020clg400-1", io_type="stream").io_type == "io_stream"
    assert hls_options(None) == HlsOptions()  # no target, no flags: HlsOptions' defaults
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nkind = "fpga"\ndescription = "d"\nclock_mhz = 250\nlut = 1\nff = 1\ndsp = 1\n'
                    'bram_36k = 1\npart = "xcku5p-ffvb676-2-e"\nstrategy = "resource"\nreuse_factor = 4\nio_type = "stream"\n')
    mine = parse_target(path)
    o = hls_options(mine)
    assert (o.strategy, o.reuse_factor, o.io_type, o.clock_period_ns) == ("resource", 4, "io_stream", 4.0)
    o = hls_options(mine, strategy="da", io_type="parallel")  # the target's reuse factor goes with its strategy
    assert (o.strategy, o.reuse_factor, o.io_type) == ("da", 1, "io_parallel")
    assert hls_options(mine, reuse_factor=2).reuse_factor == 2
    with pytest.raises(TargetError, match=r"target 'stm32l4r5' is not one \(kind 'mcu'\); give an FPGA target \(.*xc7z020"):
        hls_options(get_target("stm32l4r5"))
    path.write_text(path.read_text().replace('part = "xcku5p-ffvb676-2-e"\n', ""))
    with pytest.raises(TargetError, match="names no FPGA part"):
        hls_options(parse_target(path))
    assert hls_options(parse_target(path), part="xcku5p-ffvb676-2-e").part == "xcku5p-ffvb676-2-e"


def test_io_type_names():
    assert HlsOptions(io_type="stream").io_type == HlsOptions(io_type="io_stream").io_type == "io_stream"
    with pytest.raises(OptionError, match="--io-type must be one of parallel, stream"):
        HlsOptions(io_type="axi")


def test_io_stream_padding_inserted_by_hls4ml_is_checked(tmp_path):
    """hls4ml puts a ZeroPadding layer before a padded conv in io_stream; hwprune accepts it
    only with the conv's input type (exact zeros), and refuses any other type."""
    from pathlib import Path

    from hwprune.backends.hls4ml.convert import _same_type, check_model
    from hwprune.frontends.keras import from_keras_json

    data = Path(__file__).resolve().parents[1] / "data"
    graph = calibrate(from_keras_json(data / "KERAS_conv1d_small.json", data / "KERAS_conv1d_small_weights.h5"),
                      np.random.default_rng(0).standard_normal((100, 10, 4)))
    options = HlsOptions(io_type="stream")
    model, conversion = build_model(graph, options, tmp_path / "p", "c1")
    padding = [n for n in model.get_layers() if n.class_name == "ZeroPadding1D"]
    assert [n.name for n in padding] == [f"zp1d_{l.name}" for l in graph.layers if l.kind == "conv1d"]
    first = padding[0].get_output_variable().type
    assert _same_type(first.precision, graph.input_t)
    from hls4ml.model.types import FixedPrecisionType

    first.precision = FixedPrecisionType(graph.input_t.width + 1, graph.input_t.int_bits + 1)
    with pytest.raises(ModelError, match="'zp1d_conv1_relu' \\(inserted by hls4ml for io_stream\\): its type is"):
        check_model(model, graph, conversion, options)


@pytest.mark.parametrize("io_type", ["parallel", "stream"])
def test_a_model_ending_in_flatten_converts_in_both_io_types(io_type, tmp_path):
    """hls4ml removes a final Flatten in io_parallel and makes it a Repack in io_stream;
    the Repack must carry the pooled value's (unsigned) type, not the model default."""
    from hwprune.ir.layers import Flatten
    from hwprune.ir.spatial import Conv2D, MaxPool2D

    rng = np.random.default_rng(0)
    graph = Graph.chain("cf", (6, 6, 2), (Conv2D("conv", rng.normal(0, .3, (3, 3, 3, 2)), rng.normal(0, .3, 3),
                                           padding=((1, 1), (1, 1))), ReLU("r0"), MaxPool2D("pool", pool_size=2),
                                    Flatten("fl")))
    graph = calibrate(graph, rng.standard_normal((50, 6, 6, 2)))
    model, _ = build_model(graph, HlsOptions(io_type=io_type), tmp_path / "p", "cf")
    kinds = {n.name: n.class_name for n in model.get_layers()}
    if io_type == "stream":
        assert kinds["repack_fl"] == "Repack" and kinds["zp2d_conv"] == "ZeroPadding2D"
        precision = model.graph["repack_fl"].get_output_variable().type.precision
        assert not precision.signed and precision.width == graph.output_t.width
    else:
        assert "fl" not in kinds and "repack_fl" not in kinds


def _small_dag(bits=8):
    from codegen_graphs import small_dag

    rng = np.random.default_rng(0)
    return calibrate(small_dag(rng), rng.normal(size=(40, 4, 3, 2)), QuantConfig(bits, bits))


def test_a_graph_with_branches_converts_each_layer_reading_its_own_inputs(tmp_path):
    graph = _small_dag()
    model, conversion = build_model(graph, HlsOptions(), tmp_path / "p", "dag")
    nodes = {node.name: node for node in model.get_layers()}
    assert nodes["add"].class_name == "Merge" and nodes["add"].get_attr("op") == "add"
    assert nodes["mul"].class_name == "Merge" and nodes["mul"].get_attr("op") == "multiply"
    assert list(nodes["add"].inputs) == ["r1", "c0"] and list(nodes["gate"].inputs) == ["gap"]
    assert nodes["gap"].class_name == "GlobalPooling2D" and nodes["gap"].get_attr("pool_op") == "Average"
    # three tensors are joined two at a time, the partial join of the layer's own type
    assert conversion.auxiliary == (("cat_part1", "cat"),)
    assert list(nodes["cat_part1"].inputs) == ["add", "c0"] and list(nodes["cat"].inputs) == ["cat_part1", "r0"]
    assert nodes["cat"].get_attr("op") == "concatenate3d" and nodes["cat"].get_attr("axis") == 3
    assert nodes["r1"].get_attr("activation") == "relu1"
    assert nodes["ht"].get_attr("activation") == "relu"  # written over by hwprune's clip kernel
    in_t = graph.input_types("ht")[0]
    assert conversion.clips == (("ht", -(2 ** in_t.frac_bits), 2 ** in_t.frac_bits),)
    for name in ("add", "mul", "cat", "cat_part1"):
        p, t = nodes[name].get_output_variable().type.precision, graph.type_of(name if name != "cat_part1" else "cat")
        assert (p.width, p.integer, p.signed) == (t.width, t.int_bits, t.signed)


def test_io_stream_clones_a_tensor_with_several_readers_in_its_own_type(tmp_path):
    from hls4ml.model.types import FixedPrecisionType

    from hwprune.backends.hls4ml.convert import check_model

    graph = _small_dag()
    options = HlsOptions(io_type="stream")
    model, conversion = build_model(graph, options, tmp_path / "p", "dag")
    clones = sorted(n.name for n in model.get_layers() if n.class_name == "Clone")
    assert clones == ["clone_c0", "clone_cat", "clone_r0"]
    variable = next(iter(model.graph["clone_r0"].variables.values()))
    variable.type.precision = FixedPrecisionType(graph.type_of("r0").width + 2, 4)
    with pytest.raises(ModelError, match="'clone_r0' \\(inserted by hls4ml for io_stream\\): its type is"):
        check_model(model, graph, conversion, options)


@pytest.mark.parametrize("bounds, io_type, native", [
    ((-1.0, 1.0), "parallel", None), ((0.0, 6.0), "stream", None), ((0.0, 6.0), "parallel", "relu6"),
    ((0.0, 1.0), "parallel", "relu1"), ((0.0, 1.0), "stream", None), ((0.0, 1e3), "stream", "relu"),
])
def test_a_clip_is_an_hls4ml_activation_or_hwprunes_kernel(bounds, io_type, native, tmp_path):
    from hwprune.ir.layers import Clip
    from hwprune.reference.merge import clip_bounds

    graph = Graph.chain("clip", (4,), (Dense("fc", np.eye(4) * 3, None), Clip("c", *bounds)))
    graph = calibrate(graph, np.random.default_rng(0).normal(size=(20, 4)), QuantConfig(8, 8))
    model, conversion = build_model(graph, HlsOptions(io_type=io_type), tmp_path / "p", "clip")
    assert model.graph["c"].get_attr("activation") == (native or "relu")
    expected = () if native else (("c", *clip_bounds(graph.layer("c"), graph.input_types("c")[0])),)
    assert conversion.clips == expected


def test_the_clip_kernel_replaces_the_relu_call_and_states_its_bounds(tmp_path):
    from hwprune.ir.layers import Clip

    graph = Graph.chain("clip", (4,), (Dense("fc", np.eye(4) * 3, None), Clip("c", -1.0, 1.0)))
    graph = calibrate(graph, np.random.default_rng(0).normal(size=(20, 4)), QuantConfig(8, 8))
    x = reference.quantize_input(graph, np.random.default_rng(1).normal(size=(3, 4)))
    export_hls4ml(graph, tmp_path / "p", HlsOptions(), x, reference.run(graph, x))
    top = (tmp_path / "p" / "firmware" / "clip.cpp").read_text()
    params = (tmp_path / "p" / "firmware" / "parameters.h").read_text()
    frac = graph.input_types("c")[0].frac_bits
    assert "nnet::relu<" not in top and "nnet::clip<" in top and "_clip>(" in top
    assert f"lo_bits = {-(2 ** frac)}LL;" in params and f"hi_bits = {2 ** frac}LL;" in params
    assert (tmp_path / "p" / "firmware" / "nnet_utils" / "nnet_clip.h").is_file()


def test_a_clip_at_zero_and_past_the_types_range_is_a_plain_relu(tmp_path):
    from hwprune.ir.layers import Clip

    graph = Graph.chain("clip", (4,), (Dense("fc", np.eye(4) * 3, None), Clip("c", 0.0, 1000.0)))
    graph = calibrate(graph, np.random.default_rng(0).normal(size=(20, 4)), QuantConfig(8, 8))
    model, _ = build_model(graph, HlsOptions(io_type="stream"), tmp_path / "p", "clip")
    assert model.graph["c"].get_attr("activation") == "relu"


@pytest.mark.parametrize("io_type", ["parallel", "stream"])
def test_a_broadcast_add_converts_in_io_parallel_only(io_type, tmp_path):
    from hwprune.ir import Add, Flatten, GraphInput
    from hwprune.ir.spatial import Conv2D

    rng = np.random.default_rng(0)
    layers = (Conv2D("c", rng.normal(size=(3, 1, 1, 2)), None, inputs=("input",)), Flatten("f", inputs=("input",)),
              Dense("d", rng.normal(size=(3, 8)), None, inputs=("f",)), Add("add", inputs=("c", "d")))
    graph = calibrate(Graph("bc", (GraphInput("input", (2, 2, 2)),), layers), rng.normal(size=(20, 2, 2, 2)),
                      QuantConfig(8, 8))
    assert graph.shape_of("add") == (2, 2, 3)
    if io_type == "stream":
        with pytest.raises(ModelError, match="broadcasts .* in io_parallel only"):
            build_model(graph, HlsOptions(io_type=io_type), tmp_path / "p", "bc")
    else:
        model, _ = build_model(graph, HlsOptions(io_type=io_type), tmp_path / "p", "bc")
        assert model.graph["add"].get_output_variable().shape == [2, 2, 3]
