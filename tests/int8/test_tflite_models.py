"""MLPerf Tiny's int8 models: the .tflite reader, the int8 reference and TFLM agree on every
intermediate tensor; bad files are one line and exit 2 with nothing written."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from hwprune import reference
from hwprune.errors import ModelError
from hwprune.frontends.tflite import read_tflite
from hwprune.ir.io import load_graph, save_graph

pytest.importorskip("tflite_micro")
from hwprune.harness.tflm import TflmEngine  # noqa: E402
from hwprune.harness.compare import compare  # noqa: E402

# AD runs 1,000 inputs (0.7 s): its last layer has rare off-by-one outputs if the multiplier is
# computed in float32 as LiteRT does, not in double as TFLM does (8 of 640,000 outputs)
MODELS = {"ad01_int8": 1000, "kws_ref_model": 4, "vww_96_int8": 2, "pretrainedResnet_quant": 8}


def _cli(*args):
    proc = subprocess.run([sys.executable, "-m", "hwprune", *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("name", sorted(MODELS))
def test_host_c_equals_reference_on_every_tensor(tmp_path, data_dir, name):
    """The int8 C (dense layers, and VWW's sparse ones with zero weights skipped) on the host,
    every layer's output."""
    from hwprune.backends.c_int8 import write_int8_c
    from hwprune.backends.c_int8_plan import stored_dense
    from hwprune.harness.host_int8 import run_host

    graph = read_tflite(data_dir / f"{name}.tflite", name).graph
    if name == "vww_96_int8":  # its pointwise layers are mostly zeros: both kernels run
        assert {stored_dense(layer) for layer in graph.weighted_layers()} == {True, False}
    x = np.random.default_rng(11).integers(-128, 128, size=(min(MODELS[name], 50), *graph.input_shape))
    x[0] = -128
    write_int8_c(graph, tmp_path / "c")
    result = compare(reference.run(graph, x, trace=True), run_host(graph, tmp_path / "c", x, tmp_path), "host")
    assert result.bit_exact, result.report()
    assert len(result.layers) == len(graph.layers)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reference_equals_tflm_on_every_tensor(data_dir, name):
    model = read_tflite(data_dir / f"{name}.tflite", name)
    graph = model.graph
    x = np.random.default_rng(7).integers(-128, 128, size=(MODELS[name], *graph.input_shape))
    x[0] = -128  # the range's ends
    x[1] = 127
    expected = reference.run(graph, x, trace=True)
    run = TflmEngine(data_dir / f"{name}.tflite").run(graph, x)
    result = compare(expected, run.trace, "tflm")
    assert result.bit_exact, result.report()
    assert len(result.layers) == len(graph.layers)


def test_int8_graph_round_trips_through_ir_io(tmp_path, data_dir):
    graph = read_tflite(data_dir / "kws_ref_model.tflite", "kws").graph
    save_graph(graph, tmp_path)
    back = load_graph(tmp_path)
    x = np.random.default_rng(0).integers(-128, 128, size=(2, *graph.input_shape))
    assert back.input_t == graph.input_t
    assert np.array_equal(reference.run(back, x), reference.run(graph, x))


def test_vww_dead_channels_and_zero_weights_are_counted(data_dir):
    graph = read_tflite(data_dir / "vww_96_int8.tflite", "vww").graph
    assert graph.total_weights == 208112
    assert graph.total_weights - graph.nonzero_weights == 172258  # 82.8 % zeros, no pruning


def test_export_and_verify_with_tflm(tmp_path, data_dir):
    out = tmp_path / "kws"
    code, _, err = _cli("export", data_dir / "kws_ref_model.tflite", "--out", out)
    assert code == 0, err
    assert "tflm and host bit-exact" in err
    assert (out / "model.tflite").read_bytes() == (data_dir / "kws_ref_model.tflite").read_bytes()
    code, stdout, err = _cli("verify", out, "--engine", "tflm", "--engine", "host")
    assert code == 0, err
    assert "tflm: bit-exact" in stdout and "host: bit-exact" in stdout and "(13 layers compared)" in stdout
    x = np.random.default_rng(3).normal(0, 20, size=(3, 49, 10, 1))
    np.save(tmp_path / "x.npy", x)
    outputs = {}
    engines = ("reference", "tflm", "host", "mcu")  # the int8 C on the host and on the Cortex-M4 too
    for engine in engines:
        code, _, err = _cli("predict", out, "--inputs", tmp_path / "x.npy", "--out", tmp_path / f"{engine}.npy",
                            "--engine", engine)
        assert code == 0, err
        outputs[engine] = np.load(tmp_path / f"{engine}.npy")
    assert outputs["reference"].shape == (3, 12)
    for engine in engines[1:]:
        assert np.array_equal(outputs["reference"], outputs[engine]), engine
    code, _, err = _cli("predict", out, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "h.npy", "--engine", "hls4ml")
    assert code == 2 and "runs on reference, tflm, host, mcu" in err and not (tmp_path / "h.npy").exists()
    code, _, err = _cli("report", out)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["bit_exact"] and len(report["layers"]) == 13 and "| tflm | yes | 0 |" in (out / "report.md").read_text()


def test_verify_names_the_first_differing_operator(tmp_path, data_dir):
    """A graph changed after export: the tflm comparison points at the changed operator."""
    out = tmp_path / "ad"
    code, _, err = _cli("export", data_dir / "ad01_int8.tflite", "--out", out)
    assert code == 0, err
    graph = load_graph(out)
    layer = graph.layers[3]
    w = layer.weight.copy()
    w[0, :] = 0
    changed = graph.with_layers([*graph.layers[:3], layer.with_(weight=w), *graph.layers[4:]])
    x = np.random.default_rng(0).integers(-128, 128, size=(4, *graph.input_shape))
    run = TflmEngine(out / "model.tflite").run(changed, x)
    result = compare(reference.run(changed, x, trace=True), run.trace, "tflm")
    assert not result.bit_exact
    assert result.first_layer == "fully_connected_3"


def test_resnet_is_a_graph_with_three_residual_adds(data_dir):
    """ResNet-8's operators keep the file's tensors: each ADD joins a block's input path and its
    convolutions, and the C keeps the skip tensor alive across the block."""
    from hwprune.backends.c_int8_plan import plan_int8

    graph = read_tflite(data_dir / "pretrainedResnet_quant.tflite", "resnet").graph
    adds = [layer for layer in graph.layers if layer.kind == "int8_add"]
    assert [layer.inputs for layer in adds] == [("conv_2d_0", "conv_2d_2"), ("conv_2d_6", "conv_2d_5"),
                                                ("conv_2d_10", "conv_2d_9")]
    assert [c.name for c in graph.consumers("add_3")] == ["conv_2d_4", "conv_2d_6"]
    assert not graph.is_chain and graph.outputs == ("softmax_15",)
    plan = plan_int8(graph)
    # conv_2d_0's output (16 KiB) lives until add_3 while conv_2d_1 and conv_2d_2 write theirs
    assert plan.nbytes == plan.live_bound == 3 * 32 * 32 * 16


def test_export_and_verify_resnet_with_tflm(tmp_path, data_dir):
    out = tmp_path / "resnet"
    code, _, err = _cli("export", data_dir / "pretrainedResnet_quant.tflite", "--out", out)
    assert code == 0, err
    assert "tflm and host bit-exact" in err
    code, stdout, err = _cli("verify", out, "--engine", "tflm", "--engine", "host")
    assert code == 0, err
    assert "tflm: bit-exact" in stdout and "host: bit-exact" in stdout and "(16 layers compared)" in stdout
    assert (out / "c" / "model_int8.c").read_text().count("hwp_add_lut_s8(") == 3  # its ADDs read operand tables


def _unsupported_operator(data_dir) -> bytes:
    """ResNet-8 with its AVERAGE_POOL_2D turned into a MUL (both opcode fields rewritten in place)."""
    import tflite

    data = bytearray((data_dir / "pretrainedResnet_quant.tflite").read_bytes())
    model = tflite.Model.GetRootAsModel(bytes(data), 0)
    code = next(model.OperatorCodes(i) for i in range(model.OperatorCodesLength())
                if model.OperatorCodes(i).BuiltinCode() == 1)  # AVERAGE_POOL_2D
    table = code._tab  # the generated reader's table: where each field's bytes are
    data[table.Pos + table.Offset(4)] = 18  # deprecated_builtin_code (int8): MUL
    data[table.Pos + table.Offset(10): table.Pos + table.Offset(10) + 4] = (18).to_bytes(4, "little")  # builtin_code
    return bytes(data)


def _bad_files(tmp_path, data_dir):
    data = (data_dir / "ad01_int8.tflite").read_bytes()
    scale = np.float32(0.39101523).tobytes()  # the input tensor's scale, once in the file
    assert data.count(scale) == 1
    files = {
        "zero_scale": (data.replace(scale, b"\0\0\0\0"), "operator 0 (FULLY_CONNECTED) input: tensor 'input_1' has scale 0"),
        "truncated": (data[: len(data) // 2], "truncated or corrupt TFLite flatbuffer"),
        "not_tflite": (b"hello world, not a model", "not a TFLite flatbuffer"),
        "unsupported_op": (_unsupported_operator(data_dir), "operator 12 (MUL) is not supported"),
    }
    import tflite_micro

    from pathlib import Path

    sine = Path(tflite_micro.__file__).parent / "python" / "tflite_micro" / "sine_float.tflite"
    if sine.is_file():
        files["float"] = (sine.read_bytes(), "operator 0 (FULLY_CONNECTED) input has FLOAT32 tensor")
    return files


def test_bad_files_are_one_line_exit_2_nothing_written(tmp_path, data_dir):
    for name, (content, message) in _bad_files(tmp_path, data_dir).items():
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(content)
        with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_tflite(path)
        out = tmp_path / f"out_{name}"
        code, stdout, err = _cli("export", path, "--out", out)
        assert code == 2, (name, err)
        assert message in err and len(err.strip().splitlines()) == 1, (name, err)
        assert not out.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(f".out_{name}")] == []


def test_cortex_m4_firmware_equals_reference(tmp_path, data_dir):
    """The int8 C cross-built for the STM32L4R5's Cortex-M4 and run in the emulator (2 vectors)."""
    from hwprune.backends.c_int8 import write_int8_c
    from hwprune.errors import ToolchainError
    from hwprune.harness.cross import find_cross_cc
    from hwprune.harness.mcu_int8 import run_mcu

    try:
        find_cross_cc()
    except ToolchainError as exc:
        pytest.skip(str(exc))
    graph = read_tflite(data_dir / "ad01_int8.tflite", "ad").graph
    write_int8_c(graph, tmp_path / "c")
    x = np.random.default_rng(5).integers(-128, 128, size=(2, *graph.input_shape))
    run = run_mcu(graph, tmp_path / "c", x, tmp_path)
    assert np.array_equal(run.outputs, reference.run(graph, x))
    assert run.cycles > graph.nonzero_macs  # at least a cycle per multiply that is not skipped


def test_export_for_a_cortex_m_target_and_verify_run_the_int8_firmware(tmp_path, data_dir):
    """An int8 export for a Cortex-M target runs its C on that core in the emulator (the
    export's line and report carry the firmware's cycles, flash and RAM), records the target,
    and ``verify`` runs the mcu engine on it by default; on a folder exported without one,
    ``--engine mcu`` runs it, and --cc or --target that cannot apply are one line, exit 2."""
    pytest.importorskip("unicorn")
    out = tmp_path / "ad"
    code, _, err = _cli("export", data_dir / "ad01_int8.tflite", "--target", "stm32l4r5", "--out", out)
    assert code == 0, err
    assert "tflm and host and mcu bit-exact on 32 vectors" in err and "cycles" in err and "on stm32l4r5" in err
    meta = json.loads((out / "export.json").read_text())
    assert meta["target"] == "stm32l4r5" and meta["target_given"] is True
    report = json.loads((out / "report.json").read_text())
    mcu = report["mcu"]
    assert mcu["target"] == "stm32l4r5" and mcu["vectors"] == 32 and mcu["cycles"] > 100_000
    assert report["flash_bytes"] == mcu["flash_bytes"] and list(report["engines"]) == ["tflm", "host", "mcu"]
    code, stdout, err = _cli("verify", out, "--json")
    assert code == 0, err
    verified = json.loads(stdout)
    assert verified["bit_exact"] and "mcu" in verified["engines"] and verified["mcu"]["cycles"] == mcu["cycles"]

    plain = tmp_path / "plain"
    code, _, err = _cli("export", data_dir / "ad01_int8.tflite", "--out", plain)
    assert code == 0, err
    assert "mcu" not in err and json.loads((plain / "export.json").read_text())["target_given"] is False
    code, stdout, err = _cli("verify", plain)
    assert code == 0 and "mcu" not in stdout, err
    code, stdout, err = _cli("verify", plain, "--engine", "mcu", "--target", "nrf54l15")
    assert code == 0, err
    assert "mcu: bit-exact on 32 vectors" in stdout and "mcu: nrf54l15 (cortex-m33):" in stdout
    code, stdout, err = _cli("verify", plain, "--cc", "clang")
    assert code == 2 and stdout == "" and "--cc clang is the mcu engine's cross compiler" in err
    code, stdout, err = _cli("verify", plain, "--engine", "mcu", "--target", "xcvu9p")
    assert code == 2 and stdout == "" and "the mcu engine needs a Cortex-M target" in err


def test_no_compile_exports_an_int8_model_checked_by_tflm_alone_and_verify_builds_it(tmp_path, data_dir):
    out = tmp_path / "ad"
    code, _, err = _cli("export", data_dir / "ad01_int8.tflite", "--no-compile", "--target", "stm32l4r5", "--out", out)
    assert code == 0, err
    assert "; tflm bit-exact on 32 vectors" in err and "cycles" not in err, err
    meta = json.loads((out / "export.json").read_text())
    assert meta["compiled"] is False and meta["target_given"] is True
    assert (out / "c" / "model_int8.c").is_file()
    code, stdout, err = _cli("verify", out)
    assert code == 0, err
    assert "host: bit-exact" in stdout and "mcu: bit-exact" in stdout


def test_an_int8_model_too_big_for_its_cortex_m_target_is_exit_2_with_nothing_written(tmp_path, data_dir):
    pytest.importorskip("unicorn")
    from hwprune.paths import targets_dir

    small = tmp_path / "tinyl4.toml"
    text = (targets_dir() / "stm32l4r5.toml").read_text()
    small.write_text(text.replace('name = "stm32l4r5"', 'name = "tinyl4"').replace("flash_kib = 2048", "flash_kib = 64"))
    assert "flash_kib = 64" in small.read_text()
    out = tmp_path / "ad"
    code, stdout, err = _cli("export", data_dir / "ad01_int8.tflite", "--target", small, "--out", out)
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert "does not fit tinyl4" in err
    flash = re.search(r"flash (\d+) B > 65536 B", err)  # the firmware's measured flash, about 290 KB of it weights
    assert flash and 270_000 < int(flash.group(1)) < 320_000, err
    assert not out.exists()


def test_an_mcu_mismatch_names_the_first_differing_layer(tmp_path, data_dir):
    """The int8 firmware against a graph changed at one layer: the comparison comes from a
    build that traces every layer, and names the changed one (the layers before it equal)."""
    pytest.importorskip("unicorn")
    from hwprune.pipeline_int8 import mcu_int8
    from hwprune.targets import get_target

    out = tmp_path / "ad"
    code, _, err = _cli("export", data_dir / "ad01_int8.tflite", "--no-compile", "--out", out)
    assert code == 0, err
    graph = load_graph(out)
    x = np.random.default_rng(0).integers(-128, 128, size=(2, *graph.input_shape))
    same, figures = mcu_int8(out, graph, x, get_target("stm32l4r5"))
    assert same.bit_exact and figures["cycles"] > 0
    layer = graph.layers[3]
    w = layer.weight.copy()
    w[0, :] = 0
    changed = graph.with_layers([*graph.layers[:3], layer.with_(weight=w), *graph.layers[4:]])
    result, _ = mcu_int8(out, changed, x, get_target("stm32l4r5"))
    assert not result.bit_exact
    assert result.first_layer == "fully_connected_3" and len(result.layers) == len(graph.layers)
