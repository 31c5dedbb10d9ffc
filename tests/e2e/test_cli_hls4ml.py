"""``hwprune prune`` -> ``hwprune export --backend hls4ml`` -> ``hwprune verify``, as a user runs
them; hls4ml's C simulation (g++) must equal the integer reference on every vector.

Each project is compiled once (module fixtures); the 1,000-input runs of the shared Keras
models (dense and conv) are in benchmarks/hls4ml_agreement.py.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("hls4ml")

from hwprune.data import load_dataset  # noqa: E402
from hwprune.prune.train import fit, make_mlp  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")


@pytest.fixture(scope="module", autouse=True)
def fresh_build_cache(tmp_path_factory):
    """Compile every project in this run (export compiles it, verify then reuses the build)."""
    old = os.environ.get("HWPRUNE_CACHE_DIR")
    os.environ["HWPRUNE_CACHE_DIR"] = str(tmp_path_factory.mktemp("hls4ml-cache"))
    yield
    if old is None:
        del os.environ["HWPRUNE_CACHE_DIR"]
    else:
        os.environ["HWPRUNE_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, cli):
    """A small digits MLP (64-8-10: g++ time grows with the model), trained briefly, then
    pruned to 90 % by ``hwprune prune``."""
    root = tmp_path_factory.mktemp("hls4ml")
    d = load_dataset("digits", seed=0)
    x, y = d.x_train[:256], d.y_train[:256]
    np.savez(root / "train.npz", x=x, y=y)
    np.save(root / "calibration.npy", d.x_test[:100])
    model = make_mlp((64, 8, 10), seed=0)
    fit(model, x, y, epochs=4, lr=3e-3)
    torch.save(model, root / "trained.pt")
    cli("prune", root / "trained.pt", "--data", root / "train.npz", "--out", root / "pruned.pt",
        "--sparsity", "0.9", "--epochs", "2", check_exit=0)
    return root


@pytest.fixture(scope="module")
def exports(pruned, cli):
    out = {}
    for strategy, extra in {"latency": [], "resource": ["--reuse-factor", "2", "--weight-storage", "compressed"],
                            "da": ["--hls-tool", "Vivado", "--part", "xc7z020clg400-1"]}.items():
        folder = pruned / f"export_{strategy}"
        cli("export", pruned / "pruned.pt", "--calibration", pruned / "calibration.npy", "--out", folder,
            "--backend", "hls4ml", "--strategy", strategy, "--keep-dead-neurons", *extra, check_exit=0)
        out[strategy] = folder
    return out


@needs_gxx
@pytest.mark.parametrize("strategy", ["latency", "resource", "da"])
def test_pruned_torch_mlp_is_bit_exact_in_c_simulation(exports, cli, strategy):
    code, stdout, err = cli("verify", exports[strategy], "--json")
    report = json.loads(stdout)
    assert code == 0, err
    engine = report["engines"]["hls4ml"]
    assert engine["available"] and engine["bit_exact"] and engine["mismatches"] == 0, engine
    assert report["vectors"] == 100
    if strategy == "resource":
        assert report["weight_memory_bits"] <= 0.3 * report["dense_weight_memory_bits"]
    else:
        assert report["weight_memory_bits"] is None  # weights are constants in the logic


def test_pruning_leaves_fewer_multiplications(exports):
    report = json.loads((exports["latency"] / "report.json").read_text())
    h = report["hls4ml"]
    assert h["multiplications"] == report["nonzero_weights"] <= 0.15 * h["multiplications_dense"]
    da = json.loads((exports["da"] / "report.json").read_text())["hls4ml"]
    assert da["da_adder_cost"] > 0


def _one_line_exit_2(cli, tmp_path, *args):
    out = tmp_path / "out"
    code, stdout, err = cli("export", *args, "--out", out)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("hwprune export: error:"), err
    assert not out.exists() and not any(p.name.startswith(".out.") for p in tmp_path.iterdir())
    return lines[0]


def test_unknown_fpga_part(tmp_path, cli):
    line = _one_line_exit_2(cli, tmp_path, DATA / "KERAS_3layer.json", "--weights", DATA / "KERAS_3layer_weights.h5",
                            "--backend", "hls4ml", "--part", "xc9zz99")
    assert "unknown FPGA part 'xc9zz99'" in line


def test_keras_layer_outside_the_list(tmp_path, cli):
    config = json.loads((DATA / "KERAS_3layer.json").read_text())
    config["config"]["layers"][2]["class_name"] = "LSTM"
    (tmp_path / "m.json").write_text(json.dumps(config))
    line = _one_line_exit_2(cli, tmp_path, tmp_path / "m.json", "--weights", DATA / "KERAS_3layer_weights.h5",
                            "--backend", "hls4ml")
    assert "'fc2_relu' (LSTM) is not supported" in line


def test_weights_that_do_not_match(tmp_path, cli):
    line = _one_line_exit_2(cli, tmp_path, DATA / "KERAS_conv1d_small.json", "--weights",
                            DATA / "KERAS_3layer_weights.h5", "--backend", "hls4ml")
    assert "layer 'conv1_relu' (Conv1D)" in line


def test_json_without_weights(tmp_path, cli):
    line = _one_line_exit_2(cli, tmp_path, DATA / "KERAS_3layer.json")
    assert "--weights" in line


def test_fpga_options_without_the_hls4ml_backend(tmp_path, cli):
    line = _one_line_exit_2(cli, tmp_path, DATA / "KERAS_3layer.json", "--weights", DATA / "KERAS_3layer_weights.h5",
                            "--strategy", "resource")
    assert "--strategy" in line and "--backend hls4ml" in line


@needs_gxx
def test_fpga_target_and_io_stream(pruned, cli):
    """--target xc7z020 gives the part and the clock; io_stream with compressed Resource
    weights (hwprune's COO kernel behind a stream) is bit-exact; resources agrees."""
    folder = pruned / "export_stream"
    cli("export", pruned / "pruned.pt", "--calibration", pruned / "calibration.npy", "--out", folder,
        "--backend", "hls4ml", "--target", "xc7z020", "--io-type", "stream", "--strategy", "resource",
        "--reuse-factor", "2", "--weight-storage", "compressed", "--keep-dead-neurons", check_exit=0)
    code, stdout, err = cli("verify", folder, "--json")
    report = json.loads(stdout)
    assert code == 0, err
    assert report["engines"]["hls4ml"]["bit_exact"] and report["engines"]["hls4ml"]["mismatches"] == 0
    assert report["target"]["name"] == "xc7z020" and report["target"]["part"] == "xc7z020clg400-1"
    options = report["hls4ml"]["options"]
    assert (options["io_type"], options["target"], options["clock_period_ns"]) == ("io_stream", "xc7z020", 10.0)
    assert report["weight_memory_bits"] <= 0.3 * report["dense_weight_memory_bits"]
    project = folder / "hls4ml"
    top = next((project / "firmware").glob("*.cpp")).read_text()
    assert "hls::stream<input_t>" in top and "nnet::dense_coo<" in top
    config = (project / "hls4ml_config.yml").read_text()
    assert "Part: xc7z020clg400-1" in config and "ClockPeriod: 10.0" in config and "IOType: io_stream" in config
    resources = json.loads(cli("resources", folder, "--json", check_exit=0)[1])
    assert (resources["strategy"], resources["reuse_factor"], resources["clock_mhz"]) == ("resource", 2, 100.0)
    assert resources["part"]["part_number"] == "xc7z020clg400-1"


@needs_gxx
@pytest.mark.parametrize("name,shape,padding", [("conv1d_small", (10, 4), "zeropad1d_cl"),
                                                ("conv2d_model", (8, 8, 1), "zeropad2d_cl")])
def test_keras_conv_models_in_io_stream(tmp_path, cli, name, shape, padding):
    """'same' convolutions in io_stream: hls4ml inserts zero padding layers, checked by
    hwprune; C simulation equals the reference."""
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((64, *shape)))
    folder = tmp_path / "e"
    cli("export", DATA / f"KERAS_{name}.json", "--weights", DATA / f"KERAS_{name}_weights.h5", "--calibration",
        tmp_path / "x.npy", "--out", folder, "--backend", "hls4ml", "--io-type", "stream", check_exit=0)
    code, stdout, err = cli("verify", folder, "--json")
    engine = json.loads(stdout)["engines"]["hls4ml"]
    assert code == 0 and engine["bit_exact"] and engine["mismatches"] == 0, (engine, err)
    top = next((folder / "hls4ml" / "firmware").glob("*.cpp")).read_text()
    assert f"nnet::{padding}<" in top and "hls::stream" in top


def test_an_mcu_target_cannot_take_an_hls4ml_project(tmp_path, cli):
    line = _one_line_exit_2(cli, tmp_path, DATA / "KERAS_3layer.json", "--weights", DATA / "KERAS_3layer_weights.h5",
                            "--backend", "hls4ml", "--target", "stm32l4r5")
    assert "target 'stm32l4r5' is not one (kind 'mcu')" in line and "xc7z020" in line


@pytest.mark.parametrize("flags, widths", [((), (16, 16)), (("--weight-bits", "8"), (8, 16))])
def test_the_hls4ml_backend_defaults_to_hls4mls_16_bits(tmp_path, cli, flags, widths):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((50, 16)))
    out = tmp_path / "out"
    cli("export", DATA / "KERAS_3layer.json", "--weights", DATA / "KERAS_3layer_weights.h5", "--backend", "hls4ml",
        "--calibration", tmp_path / "x.npy", "--no-compile", "--out", out, *flags, check_exit=0)
    meta = json.loads((out / "export.json").read_text())
    assert (meta["weight_bits"], meta["activation_bits"]) == widths
    from hwprune.ir.io import load_graph

    graph = load_graph(out)
    assert {layer.weight_t.width for layer in graph.weighted_layers()} == {widths[0]}
    assert graph.input_t.width == widths[1]
    c_only = tmp_path / "c_only"
    cli("export", DATA / "KERAS_3layer.json", "--weights", DATA / "KERAS_3layer_weights.h5",
        "--calibration", tmp_path / "x.npy", "--no-compile", "--out", c_only, *flags, check_exit=0)
    meta = json.loads((c_only / "export.json").read_text())
    assert (meta["weight_bits"], meta["activation_bits"]) == (widths[0] if flags else 8, 8)


@needs_gxx
def test_a_csim_mismatch_is_traced_layer_by_layer(exports, monkeypatch):
    """When C simulation's outputs differ from the reference, the engine builds a traced twin
    of the project and hands back every layer's output, so the report names the first layer
    that differs. Here the engine is told the reference says otherwise; the trace itself
    must then equal the reference layer by layer."""
    from types import SimpleNamespace

    from hwprune import reference
    from hwprune.harness import hls4ml_engine, verify
    from hwprune.ir.io import load_graph

    folder = exports["resource"]
    graph = load_graph(folder)
    with np.load(folder / "vectors.npz") as data:
        x = data["x_int"][:20]
    engine = hls4ml_engine.Hls4mlEngine()
    assert engine.run(folder, x).trace == ()  # equal outputs: no second build
    monkeypatch.setattr(hls4ml_engine, "reference", SimpleNamespace(run=lambda g, xs: reference.run(g, xs) + 1))
    run = engine.run(folder, x)
    expected = dict(reference.run(graph, x, trace=True))
    assert [name for name, _ in run.trace] == [l.name for l in graph.layers if l.kind in ("dense", "relu")]
    for name, values in run.trace:
        assert np.array_equal(values, np.asarray(expected[name]).reshape(values.shape)), name
    comparison = verify(folder / "c", x, [engine]).comparison("hls4ml")
    assert comparison.bit_exact and len(comparison.layers) == len(run.trace)
    # Outputs that really differ, with a twin that agrees: the last layer is judged on the
    # project's own outputs, so the difference is reported, never hidden by the twin.
    monkeypatch.undo()
    simulate = hls4ml_engine._simulate
    monkeypatch.setattr(hls4ml_engine, "_simulate",
                        lambda *a, traced=None: simulate(*a, traced=traced) if traced is not None
                        else simulate(*a) + np.ldexp(1.0, -graph.output_t.frac_bits))
    comparison = verify(folder / "c", x, [engine]).comparison("hls4ml")
    assert not comparison.bit_exact and comparison.first_layer == graph.layers[-1].name
    assert len(comparison.layers) == len(run.trace)
