"""Pruning with and without quantization-aware training at 4, 6 and 8 weight bits (digits MLP).

    python -m benchmarks.experiments.qat [--quick] [--seeds N]

Every arm starts from the seed's dense float model and trains 30 more epochs (20 of
gradual global magnitude pruning, then 10 with the mask fixed); all accuracies except
"float" are of the integer reference (``hwprune.reference.predict``), i.e. of the model
as it is deployed. Activations are 8 bits throughout; weight bits vary.

- float: the pruned float model (no quantization);
- PTQ: the same float model, post-training calibrated (``quant.calibrate``);
- QAT after pruning: prune in float (20 epochs), then ``prepare_qat`` calibrates the
  types on the pruned model and QAT fine-tunes 10 epochs with the mask fixed;
- QAT during pruning: ``prepare_qat`` on the dense model, then the 20 epochs of gradual
  pruning and 10 of fine-tuning all run quantization-aware (types fixed from the dense
  model, as QKeras + pruning does).

Claim tested (criterion and arm fixed before running): QAT with 4-bit weights at 90 %
sparsity is within 2 points of dense float: mean(float at 0 %) - mean(QAT after pruning,
4 bits, 90 %) <= 2 points. "QAT during pruning" is reported beside it.
"""

from __future__ import annotations

import copy

import numpy as np

from benchmarks.experiments import common as c

BITS = (4, 6, 8)
ACTIVATION_BITS = 8
PRUNE_EPOCHS, EXTRA_EPOCHS = 20, 10
QAT_SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98)
COMMAND = "python -m benchmarks.experiments.qat"


def arms() -> list[str]:
    return ["float"] + [f"{kind}{b}" for kind in ("ptq", "qat", "qatdur") for b in BITS]


def label(arm: str) -> str:
    for kind, text in (("qatdur", "QAT during pruning"), ("qat", "QAT after pruning"), ("ptq", "PTQ")):
        if arm.startswith(kind):
            return f"{text} {arm[len(kind):]}-bit"
    return "float"


def integer_accuracy(s: c.Setup, graph) -> float:
    from hwprune import reference

    return float((reference.predict(graph, s.x_test.astype(np.float64)).argmax(axis=1) == s.y_test).mean())


def run_point(s: c.Setup, seed: int, target: float, epochs: tuple[int, int]) -> list[dict]:
    from hwprune.frontends.torch import from_torch
    from hwprune.prune import algorithms, rewinding
    from hwprune.prune.masks import strip_masks
    from hwprune.prune.train import evaluate
    from hwprune.quant.calibrate import QuantConfig, calibrate
    from hwprune.qat.model import prepare_qat, qat_graph

    prune_epochs, extra_epochs = epochs
    train = dict(lr=s.recipe.finetune_lr, batch_size=s.recipe.batch_size, seed=seed)
    dense = c.dense(s, seed)
    pruned = algorithms.gradual(dense, s.x_train, s.y_train, target, scope="global", epochs=prune_epochs, **train)
    rows = []
    # float and PTQ: 10 more float epochs with the mask fixed, then calibrate.
    tuned = rewinding.train_with_mask(pruned.model, pruned.masks, s.x_train, s.y_train, extra_epochs, **train)
    plain = strip_masks(copy.deepcopy(tuned.model))
    rows.append(c.row(s, "float", target, seed, result=tuned))
    for bits in BITS:
        graph = calibrate(from_torch(plain), s.x_train, QuantConfig(bits, ACTIVATION_BITS))
        rows.append(c.row(s, f"ptq{bits}", target, seed, test_accuracy=integer_accuracy(s, graph),
                          sparsity=tuned.sparsity, layers=tuned.layers))
    for bits in BITS:
        # After pruning: types calibrated on the pruned network, QAT fine-tuning, mask fixed.
        qat = prepare_qat(pruned.model, bits, ACTIVATION_BITS, calibration_x=s.x_train)
        after = rewinding.train_with_mask(qat, pruned.masks, s.x_train, s.y_train, extra_epochs, **train)
        # During pruning: QAT from the dense model on, through pruning and fine-tuning.
        qat_dense = prepare_qat(dense, bits, ACTIVATION_BITS, calibration_x=s.x_train)
        during = algorithms.gradual(qat_dense, s.x_train, s.y_train, target, scope="global", epochs=prune_epochs, **train)
        during = rewinding.train_with_mask(during.model, during.masks, s.x_train, s.y_train, extra_epochs, **train)
        for arm, result in ((f"qat{bits}", after), (f"qatdur{bits}", during)):
            accuracy = integer_accuracy(s, qat_graph(result.model))
            rows.append(c.row(s, arm, target, seed, result=result, torch_test_accuracy=evaluate(result.model, s.x_test, s.y_test)))
            rows[-1]["test_accuracy"] = accuracy  # the integer reference is the deployed model
    return rows


def verdicts(s: c.Setup, rows) -> list[str]:
    if 0.9 not in s.sparsities:
        return []
    dense_m, _ = c.mean_std(c.values(rows, "mlp", "float", 0.0).values())
    out = []
    for arm in ("qat4", "qatdur4", "ptq4"):
        m, _ = c.mean_std(c.values(rows, "mlp", arm, 0.9).values())
        gap = 100 * (dense_m - m)
        primary = " (the claim's arm)" if arm == "qat4" else ""
        out.append(f"- {label(arm)}{primary} at 90 %: {c.pct(m)} % vs dense float {c.pct(dense_m)} %, gap "
                   f"{gap:+.2f} points -> {'within' if gap <= 2 else 'NOT within'} 2 points")
    return out


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0])
    clock = c.Clock("qat", args)
    s = c.setup("mlp", args)
    targets = s.sparsities if s.quick else QAT_SPARSITIES
    epochs = (2, 1) if s.quick else (PRUNE_EPOCHS, EXTRA_EPOCHS)

    def compute():
        rows = []
        with c.quiet_collapse(), c.progress(len(s.seeds) * len(targets), "qat mlp") as bar:
            for seed in s.seeds:
                for target in targets:
                    rows += run_point(s, seed, target, epochs)
                    bar.update(1)
        return rows

    rows = c.rows_of("qat", s, args, compute)
    mismatches = [r for r in rows if "torch_test_accuracy" in r and r["torch_test_accuracy"] != r["test_accuracy"]]
    labels = {a: label(a) for a in arms()}
    figure = c.figure_path("qat", "mlp", s.quick)
    shown = ["float", "ptq4", "qat4", "qatdur4", "ptq8", "qat8"]
    c.plot(rows, "mlp", shown, targets, figure, "digits MLP: pruning + quantization (8-bit activations)", labels)
    pairs = [(f"qat{b}", f"ptq{b}") for b in BITS] + [(f"qatdur{b}", f"qat{b}") for b in BITS]
    command = c.command_line(COMMAND, args, s)
    markdown = c.header(
        "Pruning with and without quantization-aware training", command, s, clock,
        f"Here every arm trains {epochs[0] + epochs[1]} epochs after the dense model ({epochs[0]} gradual pruning + "
        f"{epochs[1]} with the mask fixed) at lr {s.recipe.finetune_lr:g}. Quantized accuracies are of the integer "
        f"reference; the QAT torch forward agreed with it on accuracy in {len([r for r in rows if 'torch_test_accuracy' in r]) - len(mismatches)} "
        f"of {len([r for r in rows if 'torch_test_accuracy' in r])} runs. Activations {ACTIVATION_BITS} bits.\n\n", finetune=False)
    markdown += (
        f"![accuracy vs sparsity](figures/{figure.name})\n\n{c.EVEN_AXIS}\n\n"
        f"## Test accuracy (%)\n\n{c.accuracy_table(rows, 'mlp', arms(), targets, labels)}\n\n"
        f"## Paired differences (points)\n\n{c.paired_table(rows, 'mlp', pairs, targets, labels)}\n\n"
        f"## Claims\n\n" + "\n".join(verdicts(s, rows)) + "\n"
    )
    c.save("qat", rows, markdown, {"command": command, "minutes": clock.minutes(), "recipe": s.recipe.__dict__,
                                   "bits": BITS, "activation_bits": ACTIVATION_BITS}, s.quick)


if __name__ == "__main__":
    main()
