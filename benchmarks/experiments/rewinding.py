"""Retraining after pruning at equal budgets: fine-tuning vs weight rewinding vs LR rewinding.

    python -m benchmarks.experiments.rewinding [--quick] [--seeds N] [--arch mlp|cnn|both]

Renda et al. 2020 ("Comparing rewinding and fine-tuning in neural network pruning") find
that, given the same retraining budget of t epochs, LR rewinding >= weight rewinding >=
fine-tuning. Their three arms, reproduced here on digits:

- fine-tuning: keep the trained weights, train t epochs at the schedule's final rate;
- weight rewinding: reset the surviving weights (and the biases) to their values at
  step k = T - t of the dense run and replay its schedule from step k (t epochs);
- LR rewinding: keep the trained weights and replay the schedule from step k (t epochs).

The dense recipe is the other experiments' (Adam, lr 0.003, T = 30 epochs, batch 64) with
a real schedule, fixed before any run: the step schedule that Renda et al. rewind (the
rate divided by 10 at 50 % and at 75 % of the steps), so fine-tuning runs at lr 3e-5.
With the constant rate of the other experiments, LR rewinding would be plain retraining.
Pruning is global magnitude, the same mask for all three arms of a seed and a sparsity.

- one-shot: prune the dense network once to 80, 90, 95, 98 %, retrain t = 10, 20, 30
  epochs (k = 20, 10, 0 epochs; t = 30 rewinds the weights to init: a lottery ticket);
- iterative (IMP): 10 rounds to 98 % (each removes the same fraction of what remains,
  as in the lottery experiment), each round retrained with t = 20 epochs by the arm's
  rule; the network after each round is tested.

Claim tested (criterion fixed before running): "LR rewinding >= weight rewinding >=
fine-tuning at equal budget". In each cell (mode, budget, sparsity) the paired per-seed
differences LR − WR and WR − FT are computed. The ordering is *reproduced* in a cell if
neither difference has a 95 % t-interval below 0 and both means are >= 0; *contradicted*
if either interval lies below 0; otherwise *not reproduced* (a mean reversed, not
significantly). The cells where each difference is above 0 after Holm's correction over
all cells of the experiment are counted separately.
"""

from __future__ import annotations

import copy
import dataclasses

from benchmarks.experiments import common as c

ARMS = ("finetune", "weight_rewind", "lr_rewind")
LABELS = {"finetune": "fine-tuning", "weight_rewind": "weight rewinding", "lr_rewind": "LR rewinding",
          "dense": "dense"}
COMMAND = "python -m benchmarks.experiments.rewinding"
SCHEDULE = "step"
FINAL_FACTOR = 0.01  # the step schedule's last rate, relative to lr
SPARSITIES, QUICK_SPARSITIES = (0.8, 0.9, 0.95, 0.98), (0.9, 0.98)
BUDGETS, QUICK_BUDGETS = (10, 20, 30), (2, 4)
IMP_FINAL, IMP_ROUNDS, IMP_BUDGET = 0.98, 10, 20
QUICK_IMP_ROUNDS, QUICK_IMP_BUDGET = 2, 2


def _train_kwargs(s: c.Setup, seed: int) -> dict:
    return dict(lr=s.recipe.dense_lr, batch_size=s.recipe.batch_size, seed=seed, lr_schedule=SCHEDULE)


def dense_with_snapshots(s: c.Setup, seed: int, steps: set[int]):
    """The seed's dense network trained with the schedule, and copies of it after each of ``steps``."""
    from hwprune.prune.train import fit

    model = c.make_model(s.arch, seed)
    snapshots = {0: copy.deepcopy(model)} if 0 in steps else {}

    def record(step, m):
        if step in steps:
            snapshots[step] = copy.deepcopy(m)

    fit(model, s.x_train, s.y_train, s.recipe.dense_epochs, callback=record, **_train_kwargs(s, seed))
    return model, snapshots


def oneshot_rows(s: c.Setup, seed: int, budgets, sparsities) -> tuple[list[dict], object]:
    """The one-shot rows of ``seed`` and its dense network."""
    from hwprune.prune.criteria import compute_masks
    from hwprune.prune.masks import apply_masks
    from hwprune.prune.train import fit, steps_per_epoch

    per_epoch = steps_per_epoch(len(s.x_train), s.recipe.batch_size)
    epochs = s.recipe.dense_epochs
    ks = {t: (epochs - t) * per_epoch for t in budgets}
    dense, snapshots = dense_with_snapshots(s, seed, set(ks.values()))
    kw = _train_kwargs(s, seed)
    rows = [c.row(s, "dense", 0.0, seed, model=dense, mode="dense", budget=0)]
    for target in sparsities:
        masks = compute_masks(dense, target, method="magnitude", scope="global")
        for t in budgets:
            models = {"finetune": copy.deepcopy(dense), "weight_rewind": copy.deepcopy(snapshots[ks[t]]),
                      "lr_rewind": copy.deepcopy(dense)}
            for arm, model in models.items():
                apply_masks(model, masks)
                if arm == "finetune":
                    fit(model, s.x_train, s.y_train, t, **{**kw, "lr": kw["lr"] * FINAL_FACTOR, "lr_schedule": None})
                else:
                    fit(model, s.x_train, s.y_train, epochs, start_step=ks[t], **kw)
                overall, layers = c.sparsity_of(model)
                rows.append(c.row(s, arm, target, seed, model=model, mode="oneshot", budget=t, sparsity=overall,
                                  layers=layers))
    return rows, dense


def imp_rows(s: c.Setup, seed: int, rounds: int, budget: int, dense) -> list[dict]:
    from hwprune.prune import algorithms, rewinding, schedules
    from hwprune.prune.train import steps_per_epoch

    levels = [round(schedules.iterative(r, rounds, IMP_FINAL), 4) for r in range(rounds + 1)]
    epochs = s.recipe.dense_epochs
    k = (epochs - budget) * steps_per_epoch(len(s.x_train), s.recipe.batch_size)
    kw = _train_kwargs(s, seed)
    init = c.make_model(s.arch, seed)
    rows = []

    def recorder(arm):
        def on_round(r, model):
            if r > 0:
                overall, layers = c.sparsity_of(model)
                rows.append(c.row(s, arm, levels[r], seed, model=model, mode="imp", budget=budget, sparsity=overall,
                                  layers=layers))
        return on_round

    for arm, rewind in (("weight_rewind", "weights"), ("lr_rewind", "lr")):
        rewinding.lottery(init, s.x_train, s.y_train, IMP_FINAL, rounds=rounds, epochs=epochs, rewind_iteration=k,
                           rewind=rewind, scope="global", on_round=recorder(arm), **kw)
    algorithms.iterative(dense, s.x_train, s.y_train, IMP_FINAL, rounds=rounds, epochs=rounds * budget,
                         scope="global", on_round=recorder("finetune"),
                         **{**kw, "lr": kw["lr"] * FINAL_FACTOR, "lr_schedule": None})
    return rows


def cells(s: c.Setup, rows) -> list[tuple[str, int, float]]:
    keys = {(r["mode"], r["budget"], r["target"]) for r in rows if r["arch"] == s.arch and r["mode"] != "dense"}
    return sorted(keys, key=lambda key: (key[0] != "oneshot", key[1], key[2]))  # one-shot first


def _vals(rows, arch, arm, mode, budget, target):
    return {r["seed"]: r["test_accuracy"] for r in rows
            if r["arch"] == arch and r["arm"] == arm and r["mode"] == mode and r["budget"] == budget
            and r["target"] == target}


def claim_table(s: c.Setup, rows, all_rows) -> tuple[str, dict]:
    """The ordering per cell, with Holm over every paired test of the whole run (both models)."""
    family = []
    for arch in sorted({r["arch"] for r in all_rows}):
        for mode, budget, target in cells(dataclasses.replace(s, arch=arch), all_rows):
            for a, b in (("lr_rewind", "weight_rewind"), ("weight_rewind", "finetune")):
                family.append(((arch, mode, budget, target, a, b),
                               c.paired(_vals(all_rows, arch, a, mode, budget, target),
                                        _vals(all_rows, arch, b, mode, budget, target))))
    adjusted = dict(zip([key for key, _ in family], c.holm([p["p"] for _, p in family])))
    tests = dict(family)
    lines = ["| mode | budget t | sparsity | fine-tuning | weight rewinding | LR rewinding | LR − WR | WR − FT | "
             "ordering | Holm: LR > WR, WR > FT |", "|---|---|---|---|---|---|---|---|---|---|"]
    counts = {"reproduced": 0, "not reproduced": 0, "contradicted": 0}
    for mode, budget, target in cells(s, rows):
        lr_wr = tests[(s.arch, mode, budget, target, "lr_rewind", "weight_rewind")]
        wr_ft = tests[(s.arch, mode, budget, target, "weight_rewind", "finetune")]
        if lr_wr["ci_high"] < 0 or wr_ft["ci_high"] < 0:
            verdict = "contradicted"
        elif lr_wr["mean"] >= 0 and wr_ft["mean"] >= 0:
            verdict = "reproduced"
        else:
            verdict = "not reproduced"
        counts[verdict] += 1
        holm_marks = []
        for (a, b), p in ((("lr_rewind", "weight_rewind"), lr_wr), (("weight_rewind", "finetune"), wr_ft)):
            adj = adjusted[(s.arch, mode, budget, target, a, b)]
            holm_marks.append(("yes" if p["mean"] > 0 else "reversed") if adj < 0.05 else "n.s.")
        accs = [c.fmt_mean_std(_vals(rows, s.arch, arm, mode, budget, target).values()) for arm in ARMS]
        lines.append(f"| {'one-shot' if mode == 'oneshot' else 'IMP'} | {budget} | {c.level(target)} | "
                     + " | ".join(accs) + f" | {c.fmt_paired(lr_wr)} | {c.fmt_paired(wr_ft)} | {verdict} | "
                     + ", ".join(holm_marks) + " |")
    return "\n".join(lines), counts


def figures(s: c.Setup, rows) -> list[str]:
    names = []
    modes = [("oneshot", t) for t in sorted({r["budget"] for r in rows if r["mode"] == "oneshot"})]
    modes += [("imp", t) for t in sorted({r["budget"] for r in rows if r["mode"] == "imp"})]
    for mode, budget in modes:
        sub = [r for r in rows if r["arch"] == s.arch and r["mode"] == mode and r["budget"] == budget]
        targets = sorted({r["target"] for r in sub})
        path = c.figure_path(f"rewinding_{mode}_t{budget}", s.arch, s.quick)
        what = "one-shot" if mode == "oneshot" else "IMP"
        c.plot(sub, s.arch, ARMS, targets, path, f"digits {s.arch.upper()}: {what}, retraining budget {budget} epochs",
               LABELS)
        names.append(path.name)
    return names


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0])
    clock = c.Clock("rewinding", args)
    setups, per_arch = [], {}
    for arch in c.archs(args):
        s = c.setup(arch, args)
        setups.append(s)
        budgets = QUICK_BUDGETS if s.quick else BUDGETS
        sparsities = QUICK_SPARSITIES if s.quick else SPARSITIES
        rounds, imp_budget = (QUICK_IMP_ROUNDS, QUICK_IMP_BUDGET) if s.quick else (IMP_ROUNDS, IMP_BUDGET)

        def compute():
            rows = []
            with c.quiet_collapse(), c.progress(len(s.seeds), f"rewinding {s.arch}") as bar:
                for seed in s.seeds:
                    oneshot, dense = oneshot_rows(s, seed, budgets, sparsities)
                    rows += oneshot + imp_rows(s, seed, rounds, imp_budget, dense)
                    bar.update(1)
            return rows

        per_arch[arch] = c.rows_of("rewinding", s, args, compute)
    all_rows = [r for rows in per_arch.values() for r in rows]
    sections = []
    for s in setups:
        rows = per_arch[s.arch]
        table, counts = claim_table(s, rows, all_rows)
        dense = c.fmt_mean_std(r["test_accuracy"] for r in rows if r["arm"] == "dense")
        pictures = "\n".join(f"![{name}](figures/{name})" for name in figures(s, rows))
        sections.append(
            f"## {s.arch.upper()}\n\nDense with the step schedule: {dense} %.\n\n{pictures}\n\n"
            f"{c.EVEN_AXIS}\n\n"
            f"### Accuracy (%) and the ordering per cell\n\n{table}\n\n"
            f"Cells: {counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced, "
            f"{counts['contradicted']} contradicted.\n\n"
            f"### Achieved per-layer sparsity (%), one-shot t = {max(r['budget'] for r in rows)}\n\n"
            f"{c.layer_table([r for r in rows if r['mode'] == 'oneshot' and r['budget'] == max(x['budget'] for x in rows)], s.arch, ['lr_rewind'], sorted({r['target'] for r in rows if r['mode'] == 'oneshot'}), LABELS)}\n"
        )
    s = setups[0]
    command = c.command_line(COMMAND, args, s)
    r = s.recipe
    extra = (f"Dense: the step schedule (lr {r.dense_lr:g}, divided by 10 at 50 % and 75 % of the steps). Every arm "
             f"of a cell retrains the same number of steps (t epochs); fine-tuning runs at lr "
             f"{r.dense_lr * FINAL_FACTOR:g}, the schedule's last rate. Paired differences in points; Holm's "
             f"correction is over all {2 * sum(len(cells(x, per_arch[x.arch])) for x in setups)} paired tests of this "
             f"run (two per cell, every model run); 'n.s.' = not significant after it, 'yes' = a > b after it.\n\n")
    markdown = c.header("Retraining at equal budgets: fine-tuning vs weight rewinding vs LR rewinding", command, s,
                        clock, extra, finetune=False)
    markdown += "\n".join(sections)
    c.save("rewinding", all_rows, markdown, {"command": command, "minutes": clock.minutes(), "recipe": r.__dict__,
                                             "lr_schedule": SCHEDULE}, s.quick)


if __name__ == "__main__":
    main()
