"""Shared setup of the pruning experiments: data, recipes, statistics, tables and plots.

Every experiment uses the same fixed 80/20 stratified split of scikit-learn's digits
(1437 training, 360 test images) and varies the seed, which sets the initial weights
and the minibatch order. Accuracies are on the 360 test images (one image = 0.28
points). The recipes below were fixed before any pruning run, from dense accuracy on a
validation split carved out of the training set; they are not tuned per arm.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FIGURES = DOCS / "figures"
RESULTS = ROOT / "benchmarks" / "results"

SPARSITIES = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
QUICK_SPARSITIES = (0.0, 0.9, 0.98)
MLP_SIZES = (64, 128, 64, 10)


@dataclass(frozen=True)
class Recipe:
    """Training hyperparameters: Adam, minibatches of ``batch_size``."""

    dense_epochs: int = 30
    dense_lr: float = 3e-3
    finetune_epochs: int = 20
    finetune_lr: float = 1e-3
    batch_size: int = 64


RECIPE = Recipe()
QUICK_RECIPE = Recipe(dense_epochs=4, finetune_epochs=2)


@dataclass(frozen=True)
class Setup:
    arch: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    recipe: Recipe
    seeds: tuple[int, ...]
    sparsities: tuple[float, ...]
    quick: bool


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, 3 sparsities, few epochs")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 10; 2 with --quick)")
    parser.add_argument("--arch", choices=("mlp", "cnn", "both"), default="both")
    parser.add_argument("--out", type=Path, default=None,
                        help="write docs/ and results/ under this folder instead of the repository")
    parser.add_argument("--from-results", action="store_true",
                        help="train nothing: rebuild the page and figures from the per-seed JSON of an earlier run")
    args = parser.parse_args()
    if args.out is not None:
        set_output(args.out)
    return args


def command_line(command: str, args, s: "Setup") -> str:
    """The command that reproduces this run, for the generated page."""
    arch = getattr(args, "arch", "both")
    return (command + (" --quick" if s.quick else "") + (f" --seeds {args.seeds}" if args.seeds else "")
            + (f" --arch {arch}" if arch != "both" else ""))


def set_output(root: Path) -> None:
    """Send the generated pages, figures and per-seed data under ``root``."""
    global DOCS, FIGURES, RESULTS
    DOCS = Path(root) / "docs"
    FIGURES = DOCS / "figures"
    RESULTS = Path(root) / "results"
    FIGURES.mkdir(parents=True, exist_ok=True)


def setup(arch: str, args) -> Setup:
    import torch

    from hwprune.data import load_dataset

    torch.set_num_threads(1)  # the machine's cores are shared; one run at a time, one thread
    data = load_dataset("digits", seed=0)
    shape = (-1, 1, 8, 8) if arch == "cnn" else (-1, 64)
    n_seeds = args.seeds or (2 if args.quick else 10)
    return Setup(arch, data.x_train.reshape(shape), data.y_train, data.x_test.reshape(shape), data.y_test,
                 QUICK_RECIPE if args.quick else RECIPE, tuple(range(n_seeds)),
                 QUICK_SPARSITIES if args.quick else SPARSITIES, args.quick)


def archs(args) -> list[str]:
    return ["mlp", "cnn"] if args.arch == "both" else [args.arch]


def make_model(arch: str, seed: int):
    from hwprune.prune.train import make_cnn, make_mlp

    return make_cnn(seed=seed) if arch == "cnn" else make_mlp(MLP_SIZES, seed=seed)


_DENSE: dict = {}


def dense(s: Setup, seed: int):
    """The dense model of ``seed`` trained with the recipe (cached; callers get a copy)."""
    import copy

    from hwprune.prune.train import fit

    key = (s.arch, seed, s.recipe)
    if key not in _DENSE:
        model = make_model(s.arch, seed)
        fit(model, s.x_train, s.y_train, s.recipe.dense_epochs, lr=s.recipe.dense_lr,
            batch_size=s.recipe.batch_size, seed=seed)
        _DENSE[key] = model
    return copy.deepcopy(_DENSE[key])


def test_accuracy(s: Setup, model) -> float:
    from hwprune.prune.train import evaluate

    return evaluate(model, s.x_test, s.y_test)


def sparsity_of(model) -> tuple[float, dict[str, float]]:
    """Achieved sparsity of ``model``: overall and per prunable layer."""
    from hwprune.prune.masks import sparsity

    return sparsity(model)


def row(s: Setup, arm: str, target: float, seed: int, model=None, result=None, **extra) -> dict:
    """One measurement: the arm, the target, the seed, test accuracy and what pruning achieved."""
    out = {"arch": s.arch, "arm": arm, "target": target, "seed": seed}
    if result is not None:
        model = result.model
        out.update(sparsity=result.sparsity, layers=result.layers, train_accuracy=result.train_accuracy,
                   collapse=[w.kind for w in result.warnings])
    if model is not None:
        out["test_accuracy"] = test_accuracy(s, model)
    out.update(extra)
    return out


@contextlib.contextmanager
def quiet_collapse():
    """Collapse warnings are recorded in the rows; printing each would bury the progress."""
    from hwprune.prune.algorithms import LayerCollapseWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LayerCollapseWarning)
        yield


def progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, dynamic_ncols=True)


# ---- statistics -----------------------------------------------------------------------------


def values(rows, arch, arm, target, key="test_accuracy") -> dict[int, float]:
    return {r["seed"]: r[key] for r in rows if r["arch"] == arch and r["arm"] == arm and r["target"] == target}


def mean_std(xs) -> tuple[float, float]:
    xs = np.asarray(list(xs), dtype=float)
    return float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else 0.0


def paired(a: dict[int, float], b: dict[int, float]) -> dict:
    """``a - b`` per seed: mean, std, 95 % t-interval, seeds favouring each.

    Both arms must have the same seeds: dropping the unmatched ones would silently compare
    a subset, so that is a ValueError naming them."""
    from scipy import stats

    if set(a) != set(b):
        raise ValueError(f"paired arms need the same seeds: only in a: {sorted(set(a) - set(b))}, "
                         f"only in b: {sorted(set(b) - set(a))}")
    if not a:
        raise ValueError("paired arms have no seeds")
    seeds = sorted(a)
    d = np.array([a[k] - b[k] for k in seeds])
    n = len(d)
    mean = float(d.mean())
    std = float(d.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.inf
    if n < 2:
        p_value = 1.0
    elif std == 0:
        p_value = 1.0 if mean == 0 else 0.0
    else:
        p_value = float(2 * stats.t.sf(abs(mean) / (std / math.sqrt(n)), n - 1))  # two-sided paired t-test
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "p": p_value,
            "a_wins": int((d > 0).sum()), "b_wins": int((d < 0).sum()), "ties": int((d == 0).sum())}


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given: the family-wise error rate
    stays at most alpha when each adjusted p is compared with alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def level(t: float) -> str:
    """A target sparsity as a label: 0.95 -> '95 %'."""
    return f"{100 * t:g} %"


def fmt_mean_std(xs) -> str:
    m, sd = mean_std(xs)
    return f"{100 * m:.2f} ± {100 * sd:.2f}"


def fmt_paired(p: dict) -> str:
    return (f"{100 * p['mean']:+.2f} ± {100 * p['std']:.2f} [{100 * p['ci_low']:+.2f}, {100 * p['ci_high']:+.2f}]"
            f" ({p['a_wins']}/{p['b_wins']}/{p['ties']})")


# ---- tables ---------------------------------------------------------------------------------


def accuracy_table(rows, arch, arms, targets, labels=None) -> str:
    """Test accuracy (mean ± std over seeds, %) per target sparsity and arm."""
    labels = labels or {}
    head = "| sparsity | " + " | ".join(labels.get(a, a) for a in arms) + " |"
    lines = [head, "|---|" + "---|" * len(arms)]
    for t in targets:
        cells = []
        for arm in arms:
            v = values(rows, arch, arm, t)
            cells.append(fmt_mean_std(v.values()) if v else "")
        lines.append(f"| {level(t)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(rows, arch, pairs, targets, labels=None) -> str:
    """Paired per-seed differences ``a - b`` (points): mean ± std [95 % CI] (seeds a/b/tie)."""
    labels = labels or {}
    lines = ["| sparsity | " + " | ".join(f"{labels.get(a, a)} − {labels.get(b, b)}" for a, b in pairs) + " |",
             "|---|" + "---|" * len(pairs)]
    for t in targets:
        cells = []
        for a, b in pairs:
            va, vb = values(rows, arch, a, t), values(rows, arch, b, t)
            cells.append(fmt_paired(paired(va, vb)) if va and vb else "")
        lines.append(f"| {level(t)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def layer_table(rows, arch, arms, targets, labels=None) -> str:
    """Mean achieved sparsity per layer (%) of each arm at each target."""
    labels = labels or {}
    sample = next((r for r in rows if r["arch"] == arch and r.get("layers")), None)
    if sample is None:
        return ""
    names = list(sample["layers"])
    lines = ["| arm | target | overall | " + " | ".join(f"layer {n}" for n in names) + " | collapse findings |",
             "|---|---|---|" + "---|" * len(names) + "---|"]
    for arm in arms:
        for t in targets:
            rs = [r for r in rows if r["arch"] == arch and r["arm"] == arm and r["target"] == t and r.get("layers")]
            if not rs:
                continue
            overall = np.mean([r["sparsity"] for r in rs])
            per = [np.mean([r["layers"][n] for r in rs]) for n in names]
            findings = sum(len(r.get("collapse", [])) for r in rs)
            lines.append(f"| {labels.get(arm, arm)} | {level(t)} | {pct(overall)} | "
                         + " | ".join(pct(p) for p in per) + f" | {findings} in {len(rs)} runs |")
    return "\n".join(lines)


# ---- plots and files ------------------------------------------------------------------------


def plot(rows, arch, arms, targets, path: Path, title: str, labels=None, x_key="target") -> None:
    """Accuracy vs sparsity, mean with ±1 sample std error bars, targets evenly spaced on the x axis
    (not to scale: the labels say which sparsity each position is)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or {}
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    positions = np.arange(len(targets))
    width = 0.08
    for index, arm in enumerate(arms):
        means, stds, xs = [], [], []
        for i, t in enumerate(targets):
            v = values(rows, arch, arm, t)
            if v:
                m, sd = mean_std(v.values())
                means.append(100 * m)
                stds.append(100 * sd)
                xs.append(positions[i] + (index - (len(arms) - 1) / 2) * width)
        ax.errorbar(xs, means, yerr=stds, marker="o", markersize=3, capsize=3, label=labels.get(arm, arm))
    ax.set_xticks(positions, [f"{100 * t:g}" for t in targets])
    ax.set_xlabel("target sparsity (%), evenly spaced, not to scale")
    ax.set_ylabel("test accuracy (%), mean ± 1 sample SD")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


EVEN_AXIS = ("Error bars: ±1 sample standard deviation over the seeds. The x axis places the tested sparsities at "
             "even spacing, not to scale.")


def save(name: str, rows: list[dict], markdown: str, meta: dict, quick: bool) -> None:
    """Write ``benchmarks/results/<name>.json`` and ``docs/experiments_<name>.md`` (``_quick`` with --quick)."""
    suffix = "_quick" if quick else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}{suffix}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    (DOCS / f"experiments_{name}{suffix}.md").write_text(markdown.rstrip() + "\n")
    print(f"wrote {RESULTS / f'{name}{suffix}.json'} and {DOCS / f'experiments_{name}{suffix}.md'}", file=sys.stderr)


def figure_path(name: str, arch: str, quick: bool) -> Path:
    return FIGURES / f"{name}_{arch}{'_quick' if quick else ''}.png"


def saved(name: str, quick: bool) -> dict:
    """The ``{"meta", "rows"}`` that an earlier run wrote to ``results/<name>.json``."""
    path = RESULTS / f"{name}{'_quick' if quick else ''}.json"
    if not path.is_file():
        raise SystemExit(f"--from-results: {path} does not exist; run the experiment without it first")
    return json.loads(path.read_text())


def rows_of(name: str, s: Setup, args, compute) -> list[dict]:
    """``compute()``, or with ``--from-results`` the rows of ``s.arch`` that an earlier run saved."""
    if not getattr(args, "from_results", False):
        return compute()
    return [r for r in saved(name, s.quick)["rows"] if r["arch"] == s.arch]


class Clock:
    """Wall-clock minutes since the run began (with ``--from-results``: those of the saved run)."""

    def __init__(self, name: str | None = None, args=None) -> None:
        self.start = time.perf_counter()
        self.saved = None
        if name is not None and getattr(args, "from_results", False):
            self.saved = saved(name, args.quick)["meta"]["minutes"]

    def minutes(self) -> float:
        return self.saved if self.saved is not None else (time.perf_counter() - self.start) / 60


def header(title: str, command: str, s: Setup, clock: Clock, extra: str = "", finetune: bool = True) -> str:
    r = s.recipe
    budget = (f"Pruning arms fine-tune the same dense model of each seed for {r.finetune_epochs} epochs at lr "
              f"{r.finetune_lr:g} (equal budgets). ") if finetune else ""
    return (
        f"# {title}\n\n"
        f"Generated by `{command}` in {clock.minutes():.1f} min of wall-clock (one process, one torch thread on a "
        f"2-core machine; the time depends on what else the machine runs).\n\n"
        f"Data: scikit-learn digits, fixed stratified 80/20 split (1437 train / 360 test), pixels / 16. "
        f"Seeds {s.seeds[0]}..{s.seeds[-1]} ({len(s.seeds)}): initial weights and minibatch order. "
        f"Dense: Adam lr {r.dense_lr:g}, {r.dense_epochs} epochs, batch {r.batch_size}. {budget}"
        f"Accuracies are test accuracy in %, mean ± sample standard deviation over seeds. Paired "
        f"columns: per-seed difference a − b in points, mean ± std [95 % t-interval] (seeds where a wins / b "
        f"wins / tie).\n\n{extra}"
    )


def plot_xy(series: dict[str, list[tuple[float, float, float]]], path: Path, title: str, xlabel: str,
            invert_x: bool = True, xticks=None) -> None:
    """Lines of (x, mean, std) points with std error bars; x on a log scale (weight density,
    decreasing to the right unless ``invert_x`` is false), labelled at ``xticks`` if given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for label, points in series.items():
        points = sorted(points)
        ax.errorbar([p[0] for p in points], [100 * p[1] for p in points], yerr=[100 * p[2] for p in points],
                    marker="o", markersize=3, capsize=3, label=label)
    ax.set_xscale("log")
    if xticks is not None:
        ax.set_xticks(list(xticks), [f"{t:g}" for t in xticks])
        ax.minorticks_off()
    if invert_x:
        ax.invert_xaxis()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%), mean ± 1 sample SD")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
