"""The QKeras oracle's plumbing (benchmarks/qkeras_oracle.py, benchmarks/qkeras_run.py).

QKeras 0.9 needs TensorFlow, which no test uses: what it computes is checked by
``benchmarks/qkeras_exact.py`` (docs/survey.md). These tests check what runs without it:
which Python a file is given to, that the survey says "no oracle" without one, and that the
runner refuses what it must refuse before loading anything. Where ``qkeras-v3`` is installed
(``pip install --no-deps qkeras-v3``: QKeras's Keras 3 port, on Keras 3's torch backend),
the last test runs the 3-layer tagger in it and compares every layer.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import survey
from benchmarks.qkeras_exact import compare_layers
from benchmarks.qkeras_oracle import (QKERAS3_ENV, RUNNER, TF_ENV, OracleError, add_arguments, is_qkeras, python_for,
                                      run_qkeras)

from hwprune.pipeline import load_model, random_vectors
from hwprune.ir.fixed import to_real
from hwprune.reference import core

DATA = Path(__file__).resolve().parents[1] / "data"
JSON, WEIGHTS, V3 = DATA / "qkeras_3layer.json", DATA / "qkeras_3layer_weights.h5", DATA / "qkeras-v3_3layer.keras"


def test_qkeras_files_are_told_from_plain_keras_files():
    assert is_qkeras(WEIGHTS, JSON)
    assert is_qkeras(V3, None)
    assert not is_qkeras(DATA / "KERAS_3layer_weights.h5", DATA / "KERAS_3layer.json")
    assert not is_qkeras(DATA / "qonnx_mlp.onnx", None)


def test_each_file_goes_to_the_python_that_reads_it():
    assert python_for(WEIGHTS, "/tf/python", "/k3/python") == ("/tf/python", "")
    assert python_for(V3, "/tf/python", "/k3/python") == ("/k3/python", "")
    # without a Keras 3 one, TensorFlow's runs the .keras file, and its own error says why it cannot
    assert python_for(V3, "/tf/python", None) == ("/tf/python", "")
    python, why = python_for(WEIGHTS, None, "/k3/python")
    assert python is None and "--tf-python" in why


def test_the_options_default_to_the_environment(monkeypatch):
    monkeypatch.setenv(TF_ENV, "/from/env/python")
    monkeypatch.delenv(QKERAS3_ENV, raising=False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.tf_python, args.qkeras3_python) == ("/from/env/python", None)
    assert parser.parse_args(["--qkeras3-python", "/k3"]).qkeras3_python == "/k3"


def test_without_a_python_the_survey_has_no_oracle_for_a_qkeras_file():
    name, make, why = survey.source_oracle(WEIGHTS, JSON)
    assert (name, make) == ("QKeras", None) and why.startswith("no oracle here")
    name, make, why = survey.source_oracle(WEIGHTS, JSON, tf_python="/tf/python")
    assert name == "QKeras" and callable(make) and why == ""
    # a plain Keras file keeps Keras 3
    name, make, why = survey.source_oracle(DATA / "KERAS_3layer_weights.h5", DATA / "KERAS_3layer.json",
                                           tf_python="/tf/python")
    assert name.startswith("Keras 3") and why == ""
    assert survey.source_oracle(DATA / "hgq_jet_classifier.h5", None)[0] == "HGQ"


def test_the_runner_refuses_a_lambda_layer_before_loading_anything(tmp_path):
    config = json.loads(JSON.read_text())
    config["config"]["layers"].insert(1, {"class_name": "Lambda", "config": {"name": "code", "function": "x"}})
    architecture = tmp_path / "lambda.json"
    architecture.write_text(json.dumps(config))
    np.save(tmp_path / "x.npy", np.zeros((2, 16), np.float32))
    done = subprocess.run([sys.executable, str(RUNNER), str(architecture), "--weights", str(WEIGHTS),
                           "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npz")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"qkeras_run: {architecture}: ValueError: a Lambda layer "
                                                "(serialized code) is not loaded"]
    assert not (tmp_path / "y.npz").exists()
    # the survey's side: one line, without the folder
    with pytest.raises(OracleError) as caught:
        run_qkeras(sys.executable, WEIGHTS, architecture, np.zeros((2, 16)), tmp_path)
    assert str(caught.value) == f"{architecture}: ValueError: a Lambda layer (serialized code) is not loaded"
    assert not (tmp_path / "qkeras_y.npz").exists()


def test_a_missing_python_is_one_line(tmp_path):
    with pytest.raises(OracleError, match="missing-python: no such Python"):
        run_qkeras(str(tmp_path / "missing-python"), WEIGHTS, JSON, np.zeros((2, 16)), tmp_path)


def test_the_keras3_file_equals_qkeras_v3_layer_by_layer(tmp_path):
    pytest.importorskip("qkeras", reason="qkeras-v3 is not installed (pip install --no-deps qkeras-v3==1.2.1)")
    graph = load_model(V3)
    normal = np.random.default_rng(1).standard_normal((64, 16))
    x = np.concatenate([random_vectors(graph, 64, seed=0), to_real(core.quantize_input(graph, normal), graph.input_t)])
    found, framework = run_qkeras(sys.executable, V3, None, x, tmp_path)
    assert framework.startswith("qkeras-v3")
    x_int = core.quantize_input(graph, x)
    assert compare_layers(graph, x_int, found) == (7, 7, "")
    ours = to_real(core.run(graph, x_int), graph.output_t)
    assert np.array_equal(ours, found["__pre_softmax__"].astype(np.float64))
