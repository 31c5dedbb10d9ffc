"""Gather the survey's public model files into one folder, with where each came from.

The files are read from bare git clones of their public repositories (``git -C REPO show
HEAD:path``), never downloaded here; three small ONNX files are written by torch's own
exporters (the TorchScript one, the dynamo one, and one with external data), because the
dynamo exporter and external data are what today's torch users produce. Writes ``DIR/<file>``
and ``DIR/sources.json`` (file -> repository, commit, path, license, exporter), which
``benchmarks/survey.py`` reads.

    python -m benchmarks.survey_files --mirrors /work/.mirror --out survey-models

``--mirrors`` holds ``<owner>+<name>/repo`` bare clones (what ``git clone --bare`` of
``https://github.com/<owner>/<name>`` gives, renamed); a repository that is missing is named
on stderr and its files skipped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = "fastmachinelearning/example-models"   # hls4ml's example models, Apache-2.0
TINY = "mlcommons/tiny"                           # MLPerf Tiny, Apache-2.0

# Keras 2 architecture JSON + weights: (json, weights). BinaryDense/TernaryDense (keras_bnn,
# KERAS_3layer_binary*, ternary) and GarNet are custom layers of their authors' code that no
# framework here defines, so no oracle can run them: they are left out of the survey.
KERAS_PAIRS = [
    ("KERAS_1layer.json", "KERAS_1layer_weights.h5"),
    ("KERAS_3layer.json", "KERAS_3layer_weights.h5"),
    ("KERAS_3layer.json", "KERAS_3layer_70pruned_retrained_weights.h5"),
    ("KERAS_3layer.json", "KERAS_3layer_95pruned_retrained_weights.h5"),
    ("KERAS_3layer_batch_norm.json", "KERAS_3layer_batch_norm_weights.h5"),
    ("KERAS_conv1d.json", "KERAS_conv1d_weights.h5"),
    ("KERAS_conv1d_small.json", "KERAS_conv1d_small_weights.h5"),
    ("KERAS_conv2d_model.json", "KERAS_conv2d_model_weights.h5"),
    ("KERAS_dense_16x100x100x100x100x100x5.json", "KERAS_dense_16x100x100x100x100x100x5_weights.h5"),
    ("KERAS_dense_16x200x200x200x200x200x5.json", "KERAS_dense_16x200x200x200x200x200x5_weights.h5"),
    ("KERAS_dense_16x500x500x500x500x500x5.json", "KERAS_dense_16x500x500x500x500x500x5_weights.h5"),
    ("jetTagger_Conv2D_Small.json", "jetTagger_Conv2D_Small_weights.h5"),
    ("jetTagger_Conv2D_Small_NoBatchNorm.json", "jetTagger_Conv2D_Small_NoBatchNorm_weights.h5"),
    ("qkeras_3layer.json", "qkeras_3layer_weights.h5"),
    ("qkeras_mnist_cnn.json", "qkeras_mnist_cnn_weights.h5"),
    ("qkeras_mnist_dense.json", "qkeras_mnist_dense_weights.h5"),
]
EXAMPLE_FILES = [
    "keras/qkeras-v3_3layer.keras", "keras/hgq_jet_classifier.h5", "keras/hgq_mnist_heterogeneous.h5",
    "keras/hgq_mnist_homogeneous.h5",
    "onnx/bnn_model_fc_1layer.onnx", "onnx/branched_model_ch_last.onnx", "onnx/conv1d_small_keras.onnx",
    "onnx/conv2d_small_keras.onnx", "onnx/conv2d_small_mp_keras.onnx", "onnx/dense_big_keras.onnx",
    "onnx/separable_conv_model_ch_last.onnx", "onnx/three_layer_bn_keras.onnx", "onnx/three_layer_bn_pytorch.onnx",
    "onnx/three_layer_keras.onnx", "onnx/three_layer_pytorch.onnx", "onnx/tiny_unet_ch_last.onnx",
    "onnx/two_layer_keras.onnx", "onnx/two_layer_pytorch.onnx",
    "pytorch/three_layer_model.pt", "pytorch/two_layer_model.pt",
]
TINY_FILES = [
    "benchmark/training/anomaly_detection/trained_models/ad01.h5",
    "benchmark/training/image_classification/trained_models/pretrainedResnet.h5",
    "benchmark/training/visual_wake_words/trained_models/vww_96.h5",
    "benchmark/training/streaming_wakeword/trained_models/str_ww_ref_model.h5",
]
# ONNX files of other exporters, from public repositories: (repo, path, saved as, license note).
OTHER_ONNX = [
    # The ONNX model zoo's mnist-8 (CNTK 2.5.1, opset 8), as committed in this repository.
    ("akinobu123/tf2onnx", "model.onnx", "mnist8_cntk.onnx", "ONNX model zoo mnist-8 (Apache-2.0)"),
    ("akinobu123/tf2onnx", "mnist.onnx", "mnist_tf2onnx.onnx", "no license file"),
    ("wuhanstudio/onnx-parser", "example/mnist-sm.onnx", "mnist_sm_keras2onnx.onnx", "no license file"),
    ("wuhanstudio/onnx-parser", "example/mnist-lg.onnx", "mnist_lg_keras2onnx.onnx", "no license file"),
    ("Baskov-Aleksey-Viktorovich/PyTorch-", "mnist-8.onnx", "mnist_cnn_pytorch25.onnx", "no license file"),
    ("long-long-float/mini-cnn-runtime", "mnist.onnx", "mnist_cnn_tf2onnx.onnx", "no license file"),
]


def _mirror(root: Path, repo: str) -> Path | None:
    path = root / repo.replace("/", "+") / "repo"
    return path if path.is_dir() else None


def _show(git_dir: Path, path: str) -> bytes:
    return subprocess.run(["git", "-C", str(git_dir), "show", f"HEAD:{path}"], check=True,
                          capture_output=True).stdout


def _head(git_dir: Path) -> str:
    return subprocess.run(["git", "-C", str(git_dir), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def _copy(root, out, repo, path, name, license_note, sources, **extra):
    git_dir = _mirror(root, repo)
    if git_dir is None:
        print(f"{repo}: no clone under {root}; skipped {path}", file=sys.stderr)
        return False
    data = _show(git_dir, path)
    if data.startswith(b"version https://git-lfs") or data.startswith(b"# xet version"):
        print(f"{repo}:{path}: the clone holds a large-file pointer, not the file; skipped", file=sys.stderr)
        return False
    (out / name).write_bytes(data)
    sources[name] = {"repo": repo, "commit": _head(git_dir), "path": path, "license": license_note, **extra}
    return True


def _trained(model, x, y, epochs: int = 40):
    """``model`` fitted on scikit-learn's digits (one thread, fixed seed): a classifier with the
    margins a trained model has, as the files people export are."""
    import torch
    torch.set_num_threads(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(epochs):
        for start in range(0, len(x), 64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[start:start + 64]), y[start:start + 64])
            loss.backward()
            optimizer.step()
    return model.eval()


def _torch_models(out: Path, sources: dict) -> None:
    """Three ONNX files from torch's exporters: small classifiers trained on scikit-learn's
    digits (8x8) with fixed seeds."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    mlp = _trained(nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.Sigmoid(), nn.Linear(32, 10)), x, y)
    mlp = nn.Sequential(*mlp, nn.Softmax(dim=1)).eval()
    cnn = _trained(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3),
                                 nn.Tanh(), nn.Flatten(), nn.Linear(8 * 2 * 2, 10)), x.reshape(-1, 1, 8, 8), y)
    version = torch.__version__
    made = {"repo": "(written here)", "commit": "", "license": "generated by benchmarks/survey_files.py"}
    torch.onnx.export(mlp, (torch.randn(2, 64),), str(out / "mlp_bn_sigmoid_torchscript.onnx"), dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}})
    sources["mlp_bn_sigmoid_torchscript.onnx"] = {**made, "path": f"torch {version} onnx.export(dynamo=False)"}
    program = torch.onnx.export(cnn, (torch.randn(1, 1, 8, 8),), dynamo=True)
    program.save(str(out / "cnn_tanh_dynamo.onnx"))
    sources["cnn_tanh_dynamo.onnx"] = {**made, "path": f"torch {version} onnx.export(dynamo=True)"}
    program = torch.onnx.export(mlp, (torch.randn(2, 64),), dynamo=True)
    program.save(str(out / "mlp_external_data.onnx"), external_data=True)
    sources["mlp_external_data.onnx"] = {**made, "path": f"torch {version} onnx.export(dynamo=True), external data"}


def gather(root: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    sources: dict = {}
    for json_name, weights in KERAS_PAIRS:
        if _copy(root, out, EXAMPLES, f"keras/{json_name}", json_name, "Apache-2.0", {}):
            _copy(root, out, EXAMPLES, f"keras/{weights}", weights, "Apache-2.0", sources,
                  architecture=json_name)
    for path in EXAMPLE_FILES:
        _copy(root, out, EXAMPLES, path, Path(path).name, "Apache-2.0", sources)
    for path in TINY_FILES:
        _copy(root, out, TINY, path, Path(path).name, "Apache-2.0", sources)
    for repo, path, name, license_note in OTHER_ONNX:
        _copy(root, out, repo, path, name, license_note, sources)
    _torch_models(out, sources)
    (out / "sources.json").write_text(json.dumps(sources, indent=1, sort_keys=True) + "\n")
    return sources


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"),
                   help="folder of <owner>+<name>/repo bare clones")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    sources = gather(args.mirrors, args.out)
    print(f"{len(sources)} model files in {args.out} (sources.json lists where each came from)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
