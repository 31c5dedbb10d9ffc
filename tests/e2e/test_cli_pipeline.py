"""prune -> export -> verify through the command line, as a script would chain them."""

import json

import numpy as np
import torch

from hwprune.data import load_dataset
from hwprune.prune import fit, make_mlp


def test_neuron_pruning_shrinks_the_exported_c(cli, tmp_path):
    data = load_dataset("digits", seed=2)
    model = make_mlp((64, 40, 20, 10), seed=2)
    fit(model, data.x_train, data.y_train, epochs=6, seed=2)
    torch.save(model, tmp_path / "dense.pt")
    np.savez(tmp_path / "train.npz", x=data.x_train, y=data.y_train)
    np.save(tmp_path / "calib.npy", data.x_train)

    code, stdout, _ = cli("prune", tmp_path / "dense.pt", "--data", tmp_path / "train.npz", "--out",
                          tmp_path / "pruned.pt", "--sparsity", "0.5", "--method", "neurons", "--epochs", "3",
                          "--json", check_exit=0)
    pruned = json.loads(stdout)
    assert abs(pruned["sparsity"] - 0.5 * (64 * 40 + 40 * 20) / (64 * 40 + 40 * 20 + 200)) < 0.01

    for name in ("dense", "pruned"):
        cli("export", tmp_path / f"{name}.pt", "--out", tmp_path / f"{name}_c", "--calibration",
            tmp_path / "calib.npy", "--format", "dense", check_exit=0)
        code, stdout, _ = cli("verify", tmp_path / f"{name}_c", "--json", check_exit=0)
        assert json.loads(stdout)["bit_exact"]
    before = json.loads((tmp_path / "dense_c" / "report.json").read_text())
    after = json.loads((tmp_path / "pruned_c" / "report.json").read_text())
    assert after["removed_neurons"] == {"dense_0": 20, "dense_2": 10}
    # Half the neurons of both hidden layers: every weight array shrinks to match.
    assert after["total_weights"] == 64 * 20 + 20 * 10 + 10 * 10
    assert after["weight_bytes"] == after["total_weights"]  # 8-bit weights, dense storage
    assert before["weight_bytes"] == 64 * 40 + 40 * 20 + 20 * 10
    assert after["flash_bytes"] < before["flash_bytes"] and after["ram_bytes"] <= before["ram_bytes"]
