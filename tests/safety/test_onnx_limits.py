"""ONNX files within the memory budget, and their external data from their own folder only."""

import os

import numpy as np
import pytest

from hwprune.errors import ModelError
from hwprune.frontends.onnx import load_onnx

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _gemm_model():
    w = numpy_helper.from_array(np.arange(18, dtype=np.float32).reshape(3, 6), "w")
    b = numpy_helper.from_array(np.zeros(3, np.float32), "b")
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _with_location(src, dst, location, drop_length=False):
    model = onnx.load(str(src), load_external_data=False)
    for tensor in model.graph.initializer:
        entries = [(e.key, e.value) for e in tensor.external_data]
        del tensor.external_data[:]
        for key, value in entries:
            if drop_length and key == "length":
                continue
            entry = tensor.external_data.add()
            entry.key, entry.value = key, (location if key == "location" else value)
    onnx.save(model, str(dst))
    return dst


@pytest.fixture
def external(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    onnx.save(_gemm_model(), str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=0)
    return folder


def _one_line_exit_2(code, err, message):
    assert (code, len(err.strip().splitlines())) == (2, 1), err
    assert message in err and "Traceback" not in err, err


def test_padding_that_declares_gigabytes_is_refused_before_allocating(tmp_path, run):
    """A 141-byte file: a 1x1 Conv padded by 20000 on each side of a 4x4 input asks the reference
    for a (N, 40004, 40004, 1) float64 array: 47.7 GiB for 4 vectors."""
    w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[20000] * 4)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 40004, 40004])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "pad.onnx"))
    assert (tmp_path / "pad.onnx").stat().st_size < 400
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 4, 4)))
    code, _, err = run("export", tmp_path / "pad.onnx", "--calibration", tmp_path / "x.npy", "--out", tmp_path / "o",
                       "--no-compile")
    _one_line_exit_2(code, err, "its padded input of shape (40004, 40004, 1) (one example) declares 11.9 GiB")
    assert not (tmp_path / "o").exists()


def test_raw_data_shorter_than_declared_is_one_line(tmp_path, run):
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[3, 6], raw_data=b"\0" * 8)
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "short.onnx"))
    np.save(tmp_path / "x.npy", np.zeros((4, 6)))
    code, _, err = run("export", tmp_path / "short.onnx", "--calibration", tmp_path / "x.npy", "--out",
                       tmp_path / "o", "--no-compile")
    _one_line_exit_2(code, err, "raw_data size (8 bytes) is too small for the declared shape")


def test_external_data_inside_the_folder_loads(external):
    graph = load_onnx(external / "model.onnx")
    assert np.array_equal(graph.layers[0].weight, np.arange(18).reshape(3, 6))


@pytest.mark.parametrize("location, message", [
    ("../secret", "external data location '../secret' leaves the model's folder"),
    ("/etc/passwd", "external data location '/etc/passwd' is not a relative path inside the model's folder"),
    ("link.data", "external data location 'link.data' leaves the model's folder"),  # a symlink out
], ids=["dotdot", "absolute", "symlink"])
def test_external_data_leaving_the_folder_is_refused(location, message, external, tmp_path, run):
    secret = tmp_path / "secret"
    secret.write_bytes(np.arange(18, dtype=np.float32).tobytes() + bytes(12))
    os.symlink(secret, external / "link.data")
    model = _with_location(external / "model.onnx", external / "evil.onnx", location)
    np.save(tmp_path / "x.npy", np.zeros((4, 6)))
    code, _, err = run("export", model, "--calibration", tmp_path / "x.npy", "--out", tmp_path / "o", "--no-compile")
    _one_line_exit_2(code, err, message)


def test_external_data_file_larger_than_the_budget_is_never_read(external, tmp_path):
    """Without a length, onnx reads a tensor's file to its end: a sparse 4 GiB file is refused by size."""
    data = external / "model.onnx.data"
    with open(data, "r+b") as f:
        f.truncate(4 * 2**30)  # sparse: no disk used
    model = _with_location(external / "model.onnx", external / "nolength.onnx", "model.onnx.data", drop_length=True)
    with pytest.raises(ModelError, match="external data file model.onnx.data declares 4.0 GiB"):
        load_onnx(model)


def test_huge_declared_external_tensor_is_refused(external):
    model = onnx.load(str(external / "model.onnx"), load_external_data=False)
    del model.graph.initializer[0].dims[:]
    model.graph.initializer[0].dims.extend([2**20, 2**20])
    onnx.save(model, str(external / "huge.onnx"))
    with pytest.raises(ModelError, match=r"tensor 'w' of shape \(1048576, 1048576\) declares 4096.0 GiB"):
        load_onnx(external / "huge.onnx")
