"""One-shot vs iterative vs gradual pruning (global magnitude) on digits, MLP and CNN.

    python -m benchmarks.experiments.schedules [--quick] [--seeds N] [--arch mlp|cnn|both]

Each seed's dense model is fine-tuned for the same number of epochs by every arm:
one-shot (prune, then fine-tune), iterative (5 rounds, each removing the same fraction
of what remains, the epochs split evenly) and gradual (Zhu & Gupta polynomial decay over
the first 75 % of the steps, masks updated once per epoch, the rest fine-tunes).

Claims tested (criteria fixed before running):
- MLP at 90 % unstructured within 1 point of dense: mean(dense fine-tuned for the same
  epochs) - mean(gradual at 90 %) <= 1 point (one-shot and iterative reported too);
- gradual beats one-shot at 95 % and 98 % by more than the seeds' spread: the paired mean
  difference gradual - one-shot exceeds the larger of the two arms' standard deviations.
"""

from __future__ import annotations

from benchmarks.experiments import common as c

ARMS = ("oneshot", "iterative", "gradual")
LABELS = {"oneshot": "one-shot", "iterative": "iterative (5 rounds)", "gradual": "gradual (poly. decay)",
          "dense": "dense (no fine-tuning)"}
COMMAND = "python -m benchmarks.experiments.schedules"


def run_arm(s: c.Setup, arm: str, model, target: float, seed: int):
    from hwprune.prune import algorithms

    kwargs = dict(scope="global", epochs=s.recipe.finetune_epochs, lr=s.recipe.finetune_lr,
                  batch_size=s.recipe.batch_size, seed=seed)
    if arm == "oneshot":
        return algorithms.oneshot(model, s.x_train, s.y_train, target, **kwargs)
    if arm == "iterative":
        return algorithms.iterative(model, s.x_train, s.y_train, target, rounds=5, **kwargs)
    return algorithms.gradual(model, s.x_train, s.y_train, target, **kwargs)


def experiment(s: c.Setup) -> list[dict]:
    rows = []
    with c.progress(len(s.seeds) * len(s.sparsities) * len(ARMS), f"schedules {s.arch}") as bar:
        for seed in s.seeds:
            model = c.dense(s, seed)
            rows.append(c.row(s, "dense", 0.0, seed, model=model))
            for target in s.sparsities:
                for arm in ARMS:
                    rows.append(c.row(s, arm, target, seed, result=run_arm(s, arm, model, target, seed)))
                    bar.update(1)
    return rows


def verdicts(s: c.Setup, rows) -> list[str]:
    out = []
    if s.arch == "mlp" and 0.9 in s.sparsities:
        dense_m, _ = c.mean_std(c.values(rows, "mlp", "oneshot", 0.0).values())
        for arm in ("gradual", "oneshot", "iterative"):
            m, _ = c.mean_std(c.values(rows, "mlp", arm, 0.9).values())
            gap = 100 * (dense_m - m)
            primary = " (the claim's arm)" if arm == "gradual" else ""
            out.append(f"- MLP 90 % {LABELS[arm]}{primary}: dense fine-tuned {c.pct(dense_m)} %, pruned "
                       f"{c.pct(m)} %, gap {gap:+.2f} points -> {'within' if gap <= 1 else 'NOT within'} 1 point")
    for t in (0.95, 0.98):
        if t not in s.sparsities:
            continue
        g, o = c.values(rows, s.arch, "gradual", t), c.values(rows, s.arch, "oneshot", t)
        p = c.paired(g, o)
        spread = max(c.mean_std(g.values())[1], c.mean_std(o.values())[1])
        holds = p["mean"] > spread
        out.append(f"- {s.arch.upper()} {c.level(t)}: gradual − one-shot = {c.fmt_paired(p)}; larger arm std "
                   f"{100 * spread:.2f} -> gradual beats one-shot by more than the spread: "
                   f"{'YES' if holds else 'NO'}")
    return out


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0])
    clock = c.Clock("schedules", args)
    sections, all_rows, setups = [], [], []
    for arch in c.archs(args):
        s = c.setup(arch, args)
        setups.append(s)
        with c.quiet_collapse():
            rows = c.rows_of("schedules", s, args, lambda: experiment(s))
        all_rows += rows
        figure = c.figure_path("schedules", arch, s.quick)
        c.plot(rows, arch, ARMS, s.sparsities, figure, f"digits {arch.upper()}: schedule (global magnitude)", LABELS)
        dense_line = f"Dense before fine-tuning: {c.fmt_mean_std(c.values(rows, arch, 'dense', 0.0).values())} %."
        sections.append(
            f"## {arch.upper()}\n\n{dense_line}\n\n![accuracy vs sparsity](figures/{figure.name})\n\n{c.EVEN_AXIS}\n\n"
            f"### Test accuracy (%)\n\n{c.accuracy_table(rows, arch, ARMS, s.sparsities, LABELS)}\n\n"
            f"### Paired differences (points)\n\n"
            f"{c.paired_table(rows, arch, [('gradual', 'oneshot'), ('iterative', 'oneshot'), ('gradual', 'iterative')], s.sparsities, LABELS)}\n\n"
            f"### Claims\n\n" + "\n".join(verdicts(s, rows)) + "\n\n"
            f"### Achieved per-layer sparsity of the global runs (%)\n\n"
            f"{c.layer_table(rows, arch, ARMS, [t for t in s.sparsities if t >= 0.8], LABELS)}\n"
        )
    s = setups[0]
    command = c.command_line(COMMAND, args, s)
    markdown = c.header("Pruning schedules: one-shot vs iterative vs gradual", command, s, clock,
                        "Arms: " + "; ".join(f"{LABELS[a]}" for a in ARMS) + ". Global magnitude scope.\n\n")
    markdown += "\n".join(sections)
    c.save("schedules", all_rows, markdown, {"command": command, "minutes": clock.minutes(),
                                             "recipe": s.recipe.__dict__}, s.quick)


if __name__ == "__main__":
    main()
