"""How much fine-tuning does 90 % sparsity need? The MLP's gap to dense at several budgets.

    python -m benchmarks.experiments.budget [--quick] [--seeds N]

The schedules experiment tests "digits MLP at 90 % unstructured within 1 point of dense"
with one fixed fine-tuning budget (20 epochs) and finds a 1.25-point gap. This experiment
was added afterwards to measure the gap as a function of the budget, so it reports every
budget it ran (10, 20, 40 and 80 epochs), none picked after the fact. At every budget each
seed's dense model (the schedules experiment's) is fine-tuned for the same epochs at the
same learning rate by three arms: unpruned (the dense reference for that budget), one-shot
to 90 % and gradual to 90 % (global magnitude).

Criterion per budget (fixed before running): mean(dense fine-tuned) - mean(arm at 90 %)
<= 1 point.
"""

from __future__ import annotations

import dataclasses

from benchmarks.experiments import common as c

BUDGETS = (10, 20, 40, 80)
QUICK_BUDGETS = (2, 4)
ARMS = ("unpruned", "oneshot", "gradual")
LABELS = {"unpruned": "dense fine-tuned", "oneshot": "one-shot 90 %", "gradual": "gradual 90 %"}
COMMAND = "python -m benchmarks.experiments.budget"
TARGET = 0.9


def run_arm(s: c.Setup, arm: str, model, epochs: int, seed: int):
    from hwprune.prune import algorithms

    kwargs = dict(scope="global", epochs=epochs, lr=s.recipe.finetune_lr, batch_size=s.recipe.batch_size, seed=seed)
    if arm == "unpruned":
        return algorithms.oneshot(model, s.x_train, s.y_train, 0.0, **kwargs)
    if arm == "oneshot":
        return algorithms.oneshot(model, s.x_train, s.y_train, TARGET, **kwargs)
    return algorithms.gradual(model, s.x_train, s.y_train, TARGET, **kwargs)


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0])
    clock = c.Clock("budget", args)
    s = c.setup("mlp", args)
    budgets = QUICK_BUDGETS if s.quick else BUDGETS

    def compute():
        rows = []
        with c.quiet_collapse(), c.progress(len(s.seeds) * len(budgets) * len(ARMS), "budget mlp") as bar:
            for seed in s.seeds:
                model = c.dense(s, seed)
                for epochs in budgets:
                    for arm in ARMS:
                        result = run_arm(s, arm, model, epochs, seed)
                        rows.append(c.row(s, arm, TARGET if arm != "unpruned" else 0.0, seed, result=result,
                                          epochs=epochs))
                        bar.update(1)
        return rows

    rows = c.rows_of("budget", s, args, compute)

    def accuracies(arm, epochs):
        return {r["seed"]: r["test_accuracy"] for r in rows if r["arm"] == arm and r["epochs"] == epochs}

    table = ["| fine-tuning epochs | dense fine-tuned | one-shot 90 % | gradual 90 % | dense − one-shot | "
             "dense − gradual | within 1 point (one-shot / gradual) |", "|---:|---|---|---|---|---|---|"]
    series = {LABELS[a]: [] for a in ARMS}
    for epochs in budgets:
        acc = {arm: accuracies(arm, epochs) for arm in ARMS}
        gaps = {arm: c.paired(acc["unpruned"], acc[arm]) for arm in ("oneshot", "gradual")}
        verdict = " / ".join("yes" if gaps[a]["mean"] <= 0.01 else "no" for a in ("oneshot", "gradual"))
        table.append(f"| {epochs} | {c.fmt_mean_std(acc['unpruned'].values())} | "
                     f"{c.fmt_mean_std(acc['oneshot'].values())} | {c.fmt_mean_std(acc['gradual'].values())} | "
                     f"{c.fmt_paired(gaps['oneshot'])} | {c.fmt_paired(gaps['gradual'])} | {verdict} |")
        for arm in ARMS:
            m, sd = c.mean_std(acc[arm].values())
            series[LABELS[arm]].append((epochs, m, sd))

    figure = c.figure_path("budget", "mlp", s.quick)
    c.plot_xy(series, figure, "digits MLP: 90 % global magnitude vs dense, by fine-tuning budget",
              "fine-tuning epochs (log scale)", invert_x=False, xticks=budgets)
    command = c.command_line(COMMAND, args, s)
    recipe = dataclasses.replace(s.recipe, finetune_epochs=0)
    markdown = c.header("Fine-tuning budget at 90 % sparsity (MLP)", command, dataclasses.replace(s, recipe=recipe),
                        clock, finetune=False)
    markdown += (f"Every arm fine-tunes at lr {s.recipe.finetune_lr:g} for the budget in the first column.\n\n"
                 f"![accuracy vs budget](figures/{figure.name})\n\n"
                 f"Error bars: ±1 sample standard deviation over the seeds. The budget axis is logarithmic, to scale."
                 f"\n\n" + "\n".join(table) + "\n")
    c.save("budget", rows, markdown, {"command": command, "minutes": clock.minutes(), "budgets": list(budgets),
                                      "recipe": s.recipe.__dict__}, s.quick)


if __name__ == "__main__":
    main()
