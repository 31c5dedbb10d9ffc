"""Lottery tickets on digits: rewinding to init or to iteration k vs random reinit.

    python -m benchmarks.experiments.lottery [--quick] [--seeds N] [--arch mlp|cnn|both]

Iterative magnitude pruning (global scope) from each seed's network at initialization:
train with the dense recipe, prune the same fraction of what remains, and

- rewind (init): reset the survivors to their initial values (Frankle & Carbin 2019);
- rewind (k): reset them to their values after k steps of the dense run, then train the
  remaining steps (Frankle et al. 2020), k = one epoch of steps;
- reinit (init mask) / reinit (k mask): the same masks as those arms after each round,
  applied to a fresh random initialization and trained for the full recipe (the control);
- retrain (constant lr): keep the trained weights after each pruning and retrain with the
  dense recipe again. This is what LR rewinding (Renda et al. 2020) reduces to at a
  constant learning rate: there is no schedule to rewind, so it is iterative pruning
  with full retraining. LR rewinding with a real schedule is the rewinding experiment.

10 rounds take the network to 98 %; each round's network is tested, so one run gives
the whole curve (targets 32, 54, 69, 79, 86, 90.5, 93.5, 95.6, 97, 98 %). Every arm's
network at a given target trained for the same epochs.

Claim tested (criterion fixed before running): rewinding beats random reinit at >= 95 %:
at each target >= 95 %, the paired per-seed difference rewind - reinit (same mask) has a
95 % t-interval above 0.
"""

from __future__ import annotations

from benchmarks.experiments import common as c

ARMS = ("rewind_init", "rewind_k", "reinit_init", "reinit_k", "lr_rewind")
LABELS = {"rewind_init": "rewind (init)", "rewind_k": "rewind (k = 1 epoch)", "reinit_init": "reinit (init mask)",
          "reinit_k": "reinit (k mask)", "lr_rewind": "retrain (constant lr)", "dense": "dense"}
COMMAND = "python -m benchmarks.experiments.lottery"
FINAL, ROUNDS, QUICK_ROUNDS = 0.98, 10, 3
REINIT_SEED_OFFSET = 1000


def targets(rounds: int) -> list[float]:
    from hwprune.prune import schedules

    return [round(schedules.iterative(r, rounds, FINAL), 4) for r in range(rounds + 1)]


def run_seed(s: c.Setup, seed: int, rounds: int) -> list[dict]:
    import copy

    from hwprune.prune import rewinding
    from hwprune.prune.collapse import check_collapse
    from hwprune.prune.masks import get_masks, sparsity
    from hwprune.prune.train import steps_per_epoch

    levels = targets(rounds)
    init = c.make_model(s.arch, seed)
    train = dict(lr=s.recipe.dense_lr, batch_size=s.recipe.batch_size, seed=seed)
    epochs = s.recipe.dense_epochs
    k = steps_per_epoch(len(s.x_train), s.recipe.batch_size)
    rows = []

    def recorder(arm, masks_out=None):
        def on_round(r, model):
            if r == 0 and arm != "rewind_init":
                return  # the dense round-0 network is the same for every arm: recorded once
            overall, layers = sparsity(model)
            rows.append(c.row(s, "dense" if r == 0 else arm, levels[r], seed, model=model, sparsity=overall,
                              layers=layers, collapse=[w.kind for w in check_collapse(model)]))
            if masks_out is not None and r > 0:
                masks_out[r] = copy.deepcopy(get_masks(model))
        return on_round

    masks = {"init": {}, "k": {}}
    for arm, rewind, key in (("rewind_init", 0, "init"), ("rewind_k", k, "k")):
        rewinding.lottery(init, s.x_train, s.y_train, FINAL, rounds=rounds, epochs=epochs, rewind_iteration=rewind,
                           scope="global", on_round=recorder(arm, masks[key]), **train)
    dense_model = c.dense(s, seed)  # the same recipe from the same init: the round-0 network
    rewinding.lr_rewinding(dense_model, s.x_train, s.y_train, FINAL, rounds=rounds, epochs=epochs, scope="global",
                            on_round=recorder("lr_rewind"), **train)
    for arm, key in (("reinit_init", "init"), ("reinit_k", "k")):
        for r in range(1, rounds + 1):
            result = rewinding.train_with_mask(init, masks[key][r], s.x_train, s.y_train, epochs, reinit=True,
                                                reinit_seed=seed + REINIT_SEED_OFFSET, **train)
            rows.append(c.row(s, arm, levels[r], seed, result=result))
    return rows


def verdicts(s: c.Setup, rows, levels) -> list[str]:
    out = []
    for t in [t for t in levels if t >= 0.95]:
        for rewind, reinit in (("rewind_init", "reinit_init"), ("rewind_k", "reinit_k")):
            p = c.paired(c.values(rows, s.arch, rewind, t), c.values(rows, s.arch, reinit, t))
            out.append(f"- {s.arch.upper()} {c.level(t)}: {LABELS[rewind]} − {LABELS[reinit]} = {c.fmt_paired(p)} "
                       f"-> rewinding beats reinit: {'YES' if p['ci_low'] > 0 else 'NO'}")
    return out


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0])
    clock = c.Clock("lottery", args)
    sections, all_rows, setups = [], [], []
    for arch in c.archs(args):
        s = c.setup(arch, args)
        setups.append(s)
        rounds = QUICK_ROUNDS if s.quick else ROUNDS
        levels = targets(rounds)
        def compute():
            rows = []
            with c.quiet_collapse(), c.progress(len(s.seeds), f"lottery {arch}") as bar:
                for seed in s.seeds:
                    rows += run_seed(s, seed, rounds)
                    bar.update(1)
            return rows

        rows = c.rows_of("lottery", s, args, compute)
        all_rows += rows
        figure = c.figure_path("lottery", arch, s.quick)
        c.plot(rows, arch, ARMS, levels[1:], figure, f"digits {arch.upper()}: lottery tickets (IMP, global)", LABELS)
        pairs = [("rewind_init", "reinit_init"), ("rewind_k", "reinit_k"), ("rewind_k", "rewind_init"),
                 ("lr_rewind", "rewind_init")]
        sections.append(
            f"## {arch.upper()}\n\nDense (round 0): {c.fmt_mean_std(c.values(rows, arch, 'dense', 0.0).values())} %.\n\n"
            f"![accuracy vs sparsity](figures/{figure.name})\n\n{c.EVEN_AXIS}\n\n"
            f"### Test accuracy (%)\n\n{c.accuracy_table(rows, arch, ARMS, levels[1:], LABELS)}\n\n"
            f"### Paired differences (points)\n\n{c.paired_table(rows, arch, pairs, levels[1:], LABELS)}\n\n"
            f"### Claims\n\n" + "\n".join(verdicts(s, rows, levels)) + "\n\n"
            f"### Achieved per-layer sparsity (%)\n\n"
            f"{c.layer_table(rows, arch, ['rewind_init', 'lr_rewind'], [t for t in levels if t >= 0.9], LABELS)}\n"
        )
    s = setups[0]
    command = c.command_line(COMMAND, args, s)
    r = s.recipe
    markdown = c.header(
        "Lottery tickets: weight rewinding vs random reinitialization", command, s, clock,
        f"Here every round trains with the dense recipe ({r.dense_epochs} epochs at lr {r.dense_lr:g}); there is no "
        f"separate fine-tuning. Reinit seeds are the seed + {REINIT_SEED_OFFSET} (no other seed's init in a run of up "
        f"to {REINIT_SEED_OFFSET} seeds). The arm 'retrain (constant lr)' keeps the trained weights after each pruning "
        f"and retrains with the dense recipe: with a constant learning rate that is all LR rewinding can do; "
        f"[experiments_rewinding.md](experiments_rewinding.md) compares LR rewinding with a real schedule.\n\n",
        finetune=False)
    markdown += "\n".join(sections)
    c.save("lottery", all_rows, markdown, {"command": command, "minutes": clock.minutes(),
                                           "recipe": r.__dict__}, s.quick)


if __name__ == "__main__":
    main()
