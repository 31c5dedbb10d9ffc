"""Accuracy against the bytes of real C exports: unstructured vs structured pruning (digits MLP).

    python -m benchmarks.experiments.storage [--quick] [--seeds N]

The criteria experiment compares unstructured and structured pruning by the number of
weights kept, which ignores what a sparse format spends on indices. Here every pruned
network of the criteria experiment's MLP arms (the same code, seeds and recipe, so the
same networks) is quantized (8-bit weights and activations, ``quant.calibrate`` on the
training set) and exported with ``backends.c.export_c`` and its default ``auto`` policy
(per layer, the format with the fewest bytes: dense or CSR). Bytes are those the export
writes for the weights: values, column indices and row pointers (biases are listed
apart and are the same for unstructured arms). Accuracy is that of the integer
reference (``hwprune.reference.predict``), i.e. of the exported model.

- magnitude (global) and magnitude (layer): unstructured, the masks kept;
- structured (layer): whole hidden neurons by L1 norm, physically removed with
  ``remove_pruned_neurons`` before export, so they are dense and smaller.

Only the MLP: the C backend's IR has no convolution yet.

No claim is tested here: the page reports where the curves cross, read off the table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.experiments import common as c
from benchmarks.experiments import criteria

ARMS = ("magnitude", "magnitude_layer", "structured")
LABELS = {arm: criteria.LABELS[arm] for arm in ARMS}
COMMAND = "python -m benchmarks.experiments.storage"
BITS = 8


def exported(s: c.Setup, model) -> dict:
    """Export ``model`` to C and measure the bytes written and the integer accuracy."""
    from hwprune import reference
    from hwprune.backends.c import export_c
    from hwprune.frontends.torch import from_torch
    from hwprune.quant.calibrate import QuantConfig, calibrate

    graph = calibrate(from_torch(model), s.x_train, QuantConfig(BITS, BITS))
    with tempfile.TemporaryDirectory() as tmp:
        result = export_c(graph, Path(tmp) / "c", optimize="size")  # the fewest bytes: a storage comparison
    accuracy = float((reference.predict(graph, s.x_test.astype(np.float64)).argmax(axis=1) == s.y_test).mean())
    return {"weight_bytes": result.weight_bytes, "bias_bytes": result.bias_bytes,
            "index_bytes": sum(layer.index_bytes + layer.pointer_bytes for layer in result.layers),
            "formats": [layer.format for layer in result.layers], "integer_accuracy": accuracy}


def experiment(s: c.Setup) -> list[dict]:
    import copy

    from hwprune.prune.masks import strip_masks
    from hwprune.prune.structured import remove_pruned_neurons

    rows = []
    with c.progress(len(s.seeds) * len(s.sparsities) * len(ARMS), "storage mlp") as bar:
        for seed in s.seeds:
            model = c.dense(s, seed)
            for target in s.sparsities:
                for arm in ARMS:
                    result = criteria.run_arm(s, arm, model, target, seed)
                    plain = strip_masks(copy.deepcopy(result.model))
                    if arm == "structured":
                        plain = remove_pruned_neurons(plain)
                    rows.append(c.row(s, arm, target, seed, result=result, **exported(s, plain)))
                    bar.update(1)
    return rows


def table(s: c.Setup, rows) -> str:
    lines = ["| target | " + " | ".join(f"{LABELS[a]}: bytes (of which indices) | integer acc. %" for a in ARMS) + " |",
             "|---|" + "---|---|" * len(ARMS)]
    for t in s.sparsities:
        cells = []
        for arm in ARMS:
            rs = [r for r in rows if r["arm"] == arm and r["target"] == t]
            b = c.mean_std(r["weight_bytes"] for r in rs)[0]
            i = c.mean_std(r["index_bytes"] for r in rs)[0]
            cells += [f"{b:,.0f} ({i:,.0f})", c.fmt_mean_std(r["integer_accuracy"] for r in rs)]
        lines.append(f"| {c.level(t)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0])
    clock = c.Clock("storage", args)
    s = c.setup("mlp", args)
    with c.quiet_collapse():
        rows = c.rows_of("storage", s, args, lambda: experiment(s))
    series = {}
    for arm in ARMS:
        points = []
        for t in s.sparsities:
            rs = [r for r in rows if r["arm"] == arm and r["target"] == t]
            m, sd = c.mean_std(r["integer_accuracy"] for r in rs)
            points.append((c.mean_std(r["weight_bytes"] for r in rs)[0], m, sd))
        series[LABELS[arm]] = points
    figure = c.figure_path("storage", "mlp", s.quick)
    dense_bytes = c.mean_std(r["weight_bytes"] for r in rows if r["arm"] == "magnitude" and r["target"] == 0.0)[0]
    c.plot_xy(series, figure, f"digits MLP: {BITS}-bit integer accuracy vs exported weight bytes",
              "weight bytes of the C export, indices included (log scale)")
    command = c.command_line(COMMAND, args, s)
    markdown = c.header("Accuracy vs exported bytes: unstructured vs structured (MLP, C export)", command, s, clock,
                        f"Weights and activations {BITS}-bit; format per layer chosen by `export_c`'s `auto` policy. "
                        f"The dense model exports {dense_bytes:,.0f} weight bytes. Accuracies are of the integer "
                        f"reference.\n\n")
    markdown += (f"![accuracy vs bytes](figures/{figure.name})\n\n"
                 f"The x axis is the mean exported weight bytes (values + indices + row pointers) on a log scale, "
                 f"decreasing to the right; error bars are ±1 sample standard deviation over the seeds.\n\n"
                 f"{table(s, rows)}\n")
    c.save("storage", rows, markdown, {"command": command, "minutes": clock.minutes(), "recipe": s.recipe.__dict__,
                                       "bits": BITS}, s.quick)


if __name__ == "__main__":
    main()
