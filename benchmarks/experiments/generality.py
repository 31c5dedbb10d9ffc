"""Magnitude vs random beyond digits: breast_cancer and wine (scikit-learn), one-shot.

    python -m benchmarks.experiments.generality [--quick] [--seeds N]

The criteria experiment finds magnitude pruning clearly better than random at 90, 95 and
98 % on digits. This experiment asks where that threshold lies on two other tasks that
ship with scikit-learn, with the same recipe fixed before running (no tuning per task):
an MLP with the digits MLP's hidden layers (features-128-64-classes, ReLU), the digits
recipe (Adam lr 0.003, 30 epochs dense; one-shot global pruning, then 20 epochs of
fine-tuning at lr 0.001, batch 64), the library's fixed stratified 80/20 split with
features standardized by the training set's statistics, seeds 0..9 (initial weights and
minibatch order).

Arms, as in the criteria experiment: magnitude (global), random with the same per-layer
counts as the magnitude mask, random uniform over layers. Accuracy before fine-tuning is
recorded too (the pruned network as it is).

Claim tested (criterion fixed before running): magnitude beats random (same layer
counts) at a sparsity if the paired per-seed difference magnitude − random is > 0 with
Holm-adjusted p < 0.05, Holm's correction taken over every magnitude − random test of
the run (both data sets, both random arms, every sparsity). The threshold of a task is
the lowest tested sparsity from which it holds at that and every higher tested sparsity.
"""

from __future__ import annotations

import dataclasses

from benchmarks.experiments import common as c

DATASETS = ("breast_cancer", "wine")
SPARSITIES = (0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)
QUICK_SPARSITIES = (0.9, 0.98)
HIDDEN = (128, 64)
ARMS = ("magnitude", "random", "random_uniform")
LABELS = {"magnitude": "magnitude (global)", "random": "random (same layer counts)",
          "random_uniform": "random (uniform)"}
COMMAND = "python -m benchmarks.experiments.generality"


def setup(name: str, args) -> c.Setup:
    import torch

    from hwprune.data import load_dataset

    torch.set_num_threads(1)
    d = load_dataset(name, seed=0)
    n_seeds = args.seeds or (2 if args.quick else 10)
    return c.Setup(name, d.x_train, d.y_train, d.x_test, d.y_test, c.QUICK_RECIPE if args.quick else c.RECIPE,
                   tuple(range(n_seeds)), QUICK_SPARSITIES if args.quick else SPARSITIES, args.quick)


def dense(s: c.Setup, seed: int):
    from hwprune.prune.train import fit, make_mlp

    classes = int(max(s.y_train.max(), s.y_test.max())) + 1
    model = make_mlp((s.x_train.shape[1], *HIDDEN, classes), seed=seed)
    fit(model, s.x_train, s.y_train, s.recipe.dense_epochs, lr=s.recipe.dense_lr, batch_size=s.recipe.batch_size,
        seed=seed)
    return model


def experiment(s: c.Setup) -> list[dict]:
    from hwprune.prune import algorithms

    method = {"magnitude": ("magnitude", "global"), "random": ("random", "global"),
              "random_uniform": ("random_uniform", "layer")}
    rows = []
    with c.progress(len(s.seeds), f"generality {s.arch}") as bar:
        for seed in s.seeds:
            model = dense(s, seed)
            rows.append(c.row(s, "dense", 0.0, seed, model=model))
            for target in s.sparsities:
                for arm in ARMS:
                    kind, scope = method[arm]
                    kw = dict(method=kind, scope=scope, lr=s.recipe.finetune_lr, batch_size=s.recipe.batch_size,
                              seed=seed)
                    before = algorithms.oneshot(model, s.x_train, s.y_train, target, epochs=0, **kw)
                    result = algorithms.oneshot(model, s.x_train, s.y_train, target, epochs=s.recipe.finetune_epochs,
                                                **kw)
                    rows.append(c.row(s, arm, target, seed, result=result,
                                      before_finetuning=c.test_accuracy(s, before.model)))
            bar.update(1)
    return rows


def holm_tests(rows, names, sparsities) -> dict:
    """(data set, random arm, sparsity) -> paired magnitude − arm with its Holm-adjusted p."""
    keys, tests = [], []
    for name in names:
        for other in ("random", "random_uniform"):
            for t in sparsities:
                keys.append((name, other, t))
                tests.append(c.paired(c.values(rows, name, "magnitude", t), c.values(rows, name, other, t)))
    for test, adjusted in zip(tests, c.holm([t["p"] for t in tests])):
        test["p_holm"] = adjusted
        test["beats"] = test["mean"] > 0 and adjusted < 0.05
    return dict(zip(keys, tests))


def threshold(tests, name: str, other: str, sparsities) -> str:
    holds = [tests[(name, other, t)]["beats"] for t in sparsities]
    if not any(holds):
        return "at no tested sparsity"
    first = len(holds)
    while first > 0 and holds[first - 1]:
        first -= 1
    if first == len(holds):
        return "not at the highest tested sparsity"
    below = f", not at {c.level(sparsities[first - 1])}" if first > 0 else ""
    return f"from {c.level(sparsities[first])} up{below}"


def test_table(s: c.Setup, rows, tests) -> str:
    lines = ["| sparsity | magnitude before FT | random before FT | magnitude − random (same counts) | Holm p | "
             "magnitude − random (uniform) | Holm p |", "|---|---|---|---|---|---|---|"]
    for t in s.sparsities:
        cells = []
        for arm in ("magnitude", "random"):
            v = {r["seed"]: r["before_finetuning"] for r in rows if r["arch"] == s.arch and r["arm"] == arm
                 and r["target"] == t}
            cells.append(c.fmt_mean_std(v.values()))
        for other in ("random", "random_uniform"):
            p = tests[(s.arch, other, t)]
            cells += [c.fmt_paired(p), f"{p['p_holm']:.3g}{' *' if p['beats'] else ''}"]
        lines.append(f"| {c.level(t)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0])
    clock = c.Clock("generality", args)
    setups = [setup(name, args) for name in DATASETS]
    all_rows = []
    with c.quiet_collapse():
        for s in setups:
            all_rows += c.rows_of("generality", s, args, lambda: experiment(s))
    tests = holm_tests(all_rows, DATASETS, setups[0].sparsities)
    sections = []
    for s in setups:
        figure = c.figure_path("generality", s.arch, s.quick)
        c.plot(all_rows, s.arch, ARMS, s.sparsities, figure, f"{s.arch}: magnitude vs random (one-shot + 20 epochs)",
               LABELS)
        n_test = len(s.y_test)
        dense_acc = c.fmt_mean_std(r["test_accuracy"] for r in all_rows if r["arch"] == s.arch and r["arm"] == "dense")
        sections.append(
            f"## {s.arch}\n\n{len(s.y_train)} training / {n_test} test examples ({100 / n_test:.2f} points per test "
            f"example), {s.x_train.shape[1]} features. Dense: {dense_acc} %.\n\n"
            f"![accuracy vs sparsity](figures/{figure.name})\n\n"
            f"{c.EVEN_AXIS}\n\n"
            f"### Test accuracy after fine-tuning (%)\n\n{c.accuracy_table(all_rows, s.arch, ARMS, s.sparsities, LABELS)}\n\n"
            f"### Before fine-tuning (%) and magnitude − random (points, after fine-tuning)\n\n"
            f"{test_table(s, all_rows, tests)}\n\n"
            f"`*`: magnitude beats it (mean > 0, Holm-adjusted p < 0.05).\n\n"
            f"### Threshold\n\n"
            f"- magnitude beats random (same layer counts) {threshold(tests, s.arch, 'random', s.sparsities)};\n"
            f"- magnitude beats random (uniform) {threshold(tests, s.arch, 'random_uniform', s.sparsities)}.\n"
        )
    s = setups[0]
    command = c.command_line(COMMAND, args, s)
    r = s.recipe
    head = (f"# Magnitude vs random on breast_cancer and wine\n\n"
            f"Generated by `{command}` in {clock.minutes():.1f} min of wall-clock (one process, one torch thread on a "
            f"2-core machine; the time depends on what else the machine runs).\n\n"
            f"MLP features-{'-'.join(map(str, HIDDEN))}-classes. Dense: Adam lr {r.dense_lr:g}, {r.dense_epochs} epochs, "
            f"batch {r.batch_size}; every arm prunes each seed's dense model once and fine-tunes it {r.finetune_epochs} "
            f"epochs at lr {r.finetune_lr:g}. Seeds {s.seeds[0]}..{s.seeds[-1]} ({len(s.seeds)}). Accuracies: test "
            f"accuracy in %, mean ± sample std over seeds. Paired columns: per-seed difference a − b in points, "
            f"mean ± std [95 % t-interval] (seeds where a wins / b wins / tie). Holm's correction is over all "
            f"{len(tests)} magnitude − random tests of this page.\n\n")
    c.save("generality", all_rows, head + "\n".join(sections),
           {"command": command, "minutes": clock.minutes(), "recipe": dataclasses.asdict(r), "hidden": HIDDEN},
           s.quick)


if __name__ == "__main__":
    main()
