"""Which weights to remove: magnitude vs random, and unstructured vs structured, on digits.

    python -m benchmarks.experiments.criteria [--quick] [--seeds N] [--arch mlp|cnn|both]

All arms are one-shot: prune the seed's dense model, then fine-tune it for the same
epochs with the mask fixed.

- magnitude: global magnitude ranking;
- random: the same per-layer counts as the magnitude mask, weights drawn at random
  (isolates *which* weights from *how many per layer*);
- random (uniform): every layer pruned to the target at random;
- magnitude (layer): every layer pruned to the target by magnitude, the unstructured
  reference for
- structured: whole units by L1 norm of their weights, every layer to the target (MLP:
  hidden neurons; CNN: convolution filters; the output layer is never removed). Its
  storage is measured after ``remove_pruned_neurons`` physically drops the dead units
  (and the inputs of the next layer that read them), so "weights kept" is what a
  dense kernel of the smaller model stores.

Claim tested (criterion fixed before running): magnitude beats random at >= 90 %: the
paired per-seed difference magnitude - random has a 95 % t-interval above 0, at each of
90, 95 and 98 %.
"""

from __future__ import annotations

from benchmarks.experiments import common as c

ARMS = ("magnitude", "random", "random_uniform", "magnitude_layer", "structured")
LABELS = {"magnitude": "magnitude (global)", "random": "random (same layer counts)",
          "random_uniform": "random (uniform)", "magnitude_layer": "magnitude (layer)",
          "structured": "structured (layer)"}
COMMAND = "python -m benchmarks.experiments.criteria"


def kept_fraction(original, model) -> float:
    """Weights of the prunable modules that a model stores, as a fraction of ``original``'s."""
    from hwprune.prune.masks import prunable_modules

    total = sum(m.weight.numel() for m in prunable_modules(original).values())
    kept = sum(m.weight.numel() for m in prunable_modules(model).values())
    return kept / total


def run_arm(s: c.Setup, arm: str, model, target: float, seed: int):
    from hwprune.prune import algorithms

    method, scope = {
        "magnitude": ("magnitude", "global"), "random": ("random", "global"),
        "random_uniform": ("random_uniform", "layer"), "magnitude_layer": ("magnitude", "layer"),
        "structured": ("filters" if s.arch == "cnn" else "neurons", "layer"),
    }[arm]
    return algorithms.oneshot(model, s.x_train, s.y_train, target, method=method, scope=scope,
                              epochs=s.recipe.finetune_epochs, lr=s.recipe.finetune_lr,
                              batch_size=s.recipe.batch_size, seed=seed)


def experiment(s: c.Setup) -> list[dict]:
    from hwprune.prune.masks import prunable_modules
    from hwprune.prune.structured import remove_pruned_neurons

    rows = []
    with c.progress(len(s.seeds) * len(s.sparsities) * len(ARMS), f"criteria {s.arch}") as bar:
        for seed in s.seeds:
            model = c.dense(s, seed)
            for target in s.sparsities:
                for arm in ARMS:
                    result = run_arm(s, arm, model, target, seed)
                    if arm == "structured":
                        small = remove_pruned_neurons(result.model)
                        # The smaller model computes the same function: measure it, not the masked one.
                        kept = kept_fraction(model, small)
                        extra = dict(kept=kept, shapes={n: list(m.weight.shape) for n, m in prunable_modules(small).items()},
                                     small_test_accuracy=c.test_accuracy(s, small))
                    else:
                        extra = dict(kept=1.0 - result.sparsity)
                    rows.append(c.row(s, arm, target, seed, result=result, **extra))
                    bar.update(1)
    return rows


CLAIM_LEVELS = (0.9, 0.95, 0.98)


def claim_tests(rows, archs) -> dict:
    """(arch, random arm, level) -> paired magnitude − arm with ``p_holm``: Holm's correction
    over the whole family of the claim (both models, both random arms, three levels)."""
    keys = [(arch, other, t) for arch in archs for other in ("random", "random_uniform") for t in CLAIM_LEVELS
            if c.values(rows, arch, "magnitude", t)]
    tests = [c.paired(c.values(rows, a, "magnitude", t), c.values(rows, a, other, t)) for a, other, t in keys]
    for test, adjusted in zip(tests, c.holm([t["p"] for t in tests])):
        test["p_holm"] = adjusted
    return dict(zip(keys, tests))


def verdicts(s: c.Setup, tests) -> list[str]:
    out = []
    for (arch, other, t), p in tests.items():
        if arch != s.arch:
            continue
        holds = p["ci_low"] > 0
        out.append(f"- {s.arch.upper()} {c.level(t)}: magnitude − {LABELS[other]} = {c.fmt_paired(p)}, Holm-adjusted "
                   f"p = {p['p_holm']:.2g} -> magnitude beats it: {'YES' if holds else 'NO'}"
                   f"{'' if (p['p_holm'] < 0.05) == holds else ' (not after Holm)'}")
    return out


def structured_table(s: c.Setup, rows) -> str:
    lines = ["| target | unstructured (layer) acc. | weights kept | structured acc. | weights kept after removal "
             "| structured − unstructured (same target) |", "|---|---|---|---|---|---|"]
    for t in s.sparsities:
        u = [r for r in rows if r["arch"] == s.arch and r["arm"] == "magnitude_layer" and r["target"] == t]
        st = [r for r in rows if r["arch"] == s.arch and r["arm"] == "structured" and r["target"] == t]
        p = c.paired(c.values(rows, s.arch, "structured", t), c.values(rows, s.arch, "magnitude_layer", t))
        lines.append(f"| {c.level(t)} | {c.fmt_mean_std(r['test_accuracy'] for r in u)} | "
                     f"{c.pct(c.mean_std(r['kept'] for r in u)[0])} % | {c.fmt_mean_std(r['test_accuracy'] for r in st)} | "
                     f"{c.pct(c.mean_std(r['kept'] for r in st)[0])} % | {c.fmt_paired(p)} |")
    return "\n".join(lines)


def storage_plot(s: c.Setup, rows) -> str:
    series = {}
    for arm in ("magnitude_layer", "structured", "magnitude"):
        points = []
        for t in s.sparsities:
            rs = [r for r in rows if r["arch"] == s.arch and r["arm"] == arm and r["target"] == t]
            m, sd = c.mean_std(r["test_accuracy"] for r in rs)
            points.append((c.mean_std(r["kept"] for r in rs)[0], m, sd))
        series[LABELS[arm]] = points
    path = c.figure_path("criteria_storage", s.arch, s.quick)
    c.plot_xy(series, path, f"digits {s.arch.upper()}: accuracy vs weights kept",
              "weights kept (fraction of the dense model's, log scale)")
    return path.name


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0])
    clock = c.Clock("criteria", args)
    sections, all_rows, setups = [], [], []
    for arch in c.archs(args):
        s = c.setup(arch, args)
        setups.append(s)
        with c.quiet_collapse():
            all_rows += c.rows_of("criteria", s, args, lambda: experiment(s))
    tests = claim_tests(all_rows, [s.arch for s in setups])
    for s in setups:
        arch, rows = s.arch, [r for r in all_rows if r["arch"] == s.arch]
        figure = c.figure_path("criteria", arch, s.quick)
        c.plot(rows, arch, ARMS, s.sparsities, figure, f"digits {arch.upper()}: pruning criterion (one-shot)", LABELS)
        storage = storage_plot(s, rows)
        unit = "filters" if arch == "cnn" else "neurons"
        sections.append(
            f"## {arch.upper()}\n\n![accuracy vs sparsity](figures/{figure.name})\n\n"
            f"{c.EVEN_AXIS}\n\n"
            f"### Test accuracy (%)\n\n{c.accuracy_table(rows, arch, ARMS, s.sparsities, LABELS)}\n\n"
            f"### Magnitude vs random: paired differences (points)\n\n"
            f"{c.paired_table(rows, arch, [('magnitude', 'random'), ('magnitude', 'random_uniform'), ('random', 'random_uniform')], s.sparsities, LABELS)}\n\n"
            f"### Claims\n\nHolm's correction is over the {len(tests)} tests of the claim (both models, both random "
            f"arms, 90/95/98 %).\n\n" + "\n".join(verdicts(s, tests)) + "\n\n"
            f"### Unstructured vs structured ({unit})\n\n"
            f"Structured targets are fractions of {unit} per layer; weights kept are counted after the dead units "
            f"are removed. Index storage of the unstructured masks is not counted here. Weights kept are on a log "
            f"scale; error bars ±1 sample standard deviation.\n\n"
            f"![accuracy vs weights kept](figures/{storage})\n\n{structured_table(s, rows)}\n\n"
            f"### Achieved per-layer sparsity (%)\n\n"
            f"{c.layer_table(rows, arch, ['magnitude', 'structured'], [t for t in s.sparsities if t >= 0.8], LABELS)}\n"
        )
    s = setups[0]
    command = c.command_line(COMMAND, args, s)
    markdown = c.header("Pruning criteria: magnitude vs random, unstructured vs structured", command, s, clock,
                        "All arms one-shot + fine-tuning.\n\n")
    markdown += "\n".join(sections)
    c.save("criteria", all_rows, markdown, {"command": command, "minutes": clock.minutes(),
                                            "recipe": s.recipe.__dict__}, s.quick)


if __name__ == "__main__":
    main()
