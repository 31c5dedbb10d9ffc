"""verify on an export folder whose vectors.npz is gone or damaged: one line naming the file,
not a traceback; the folder no longer matches its manifest, so --inputs does not rescue it."""

import shutil

import numpy as np
import pytest
from torch import nn

from hwprune.errors import HwpruneError
from hwprune.frontends.torch import from_torch
from hwprune.pipeline import ExportOptions, write_export
from hwprune.quant.calibrate import QuantConfig, calibrate
from hwprune.report import analyze


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    graph = calibrate(from_torch(nn.Sequential(nn.Linear(3, 2)), name="tiny"), x, QuantConfig(8, 8))
    return write_export(graph, tmp_path_factory.mktemp("v") / "exp", x, ExportOptions())


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_bad_vectors_file_is_one_line_naming_it(export, tmp_path, damage):
    folder = tmp_path / "exp"
    shutil.copytree(export, folder)
    if damage == "missing":
        (folder / "vectors.npz").unlink()
    else:
        (folder / "vectors.npz").write_text("not an npz\n")
    for inputs in (None, np.zeros((4, 3), np.float32)):
        with pytest.raises(HwpruneError, match=r"vectors\.npz .*hwprune export again") as caught:
            analyze(folder, inputs)
        assert "\n" not in str(caught.value)
