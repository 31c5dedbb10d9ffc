"""A finished sweep's outputs: sweep.json, sweep.md, the Pareto plot and best/."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Optional

from hwprune.manifest import foreign_content as export_foreign
from hwprune.outputs import is_temporary_sibling, output_dir
from hwprune.sweep.pareto import Point, aggregate, best_point, pareto_front
from hwprune.sweep.runner import SPEC_FILE, TRIALS_DIR, SweepRun, trial_foreign
from hwprune.sweep.spec import OBJECTIVES, SweepSpec

SWEEP_JSON = "sweep.json"
SWEEP_MD = "sweep.md"
SWEEP_PNG = "sweep.png"
BEST_DIR = "best"


def summarize(spec: SweepSpec, run: SweepRun) -> dict:
    points = aggregate(run.records)
    front = pareto_front(points)
    best = best_point(points, spec.min_accuracy)
    on_front = {p.config for p in front}
    objective = OBJECTIVES[spec.objective]
    trial_seconds = sum(r.get("seconds", 0.0) for r in run.records if r["id"] in run.ran)
    return {
        "spec": spec.to_dict(),
        "objective": {"name": objective.name, "unit": objective.unit, "report_keys": list(objective.keys)},
        "trials": run.records,
        "points": [{**p.to_dict(), "on_front": p.config in on_front} for p in points],
        "front": [p.config for p in front],
        "best": None if best is None else best.to_dict(),
        "best_accuracy_reached": max((p.accuracy for p in points), default=None),
        "failed_trials": [r["id"] for r in run.records if r.get("error") is not None],
        "run": {"trials_run": len(run.ran), "trials_resumed": len(run.records) - len(run.ran),
                "wall_seconds": round(run.wall_seconds, 2), "trial_seconds": round(trial_seconds, 2),
                "workers": run.workers},
    }


def best_trial(summary: dict) -> Optional[dict]:
    """Of the best point's seeds, the most accurate (ties: the cheaper, then the lower seed)."""
    if summary["best"] is None:
        return None
    ids = set(summary["best"]["trials"])
    seeds = [r for r in summary["trials"] if r["id"] in ids]
    return min(seeds, key=lambda r: (-r["accuracy"], r["objective"], r["seed"]))


def _label(objective: dict) -> str:
    name, unit = objective["name"], objective["unit"]
    return name if unit == name else f"{name} ({unit})"


def _note(record: dict) -> str:
    warnings = record.get("collapse_warnings") or []
    if not warnings:
        return ""
    return f"{len(warnings)} collapse warning(s) (sweep.json): {warnings[0].split(':')[0]}"


def render_markdown(summary: dict) -> str:
    spec, objective = summary["spec"], summary["objective"]
    unit = objective["unit"]
    lines = [
        f"# Sweep of {spec['name']} on {spec['target']}",
        "",
        f"Objective: **{objective['name']}** ({unit}, lower is better; read from report key "
        f"{' or '.join(objective['report_keys'])}); bar: mean test accuracy >= {spec['min_accuracy']:.2%} "
        f"over {spec['seeds']} seed(s). Accuracy is the exported fixed-point model's (integer reference).",
        "",
    ]
    best = summary["best"]
    if best:
        lines.append(f"**Best**: `{best['config']}`: {best['objective']:.6g} {unit}, accuracy "
                     f"{best['accuracy']:.2%} ± {best['accuracy_sd']:.2%} (its export is in `best/`).")
    else:
        reached = summary["best_accuracy_reached"]
        lines.append(f"**No point meets the bar**; the best mean accuracy reached is "
                     f"{'n/a' if reached is None else f'{reached:.2%}'}.")
    lines += ["", "## Points (mean ± sample SD over seeds; * on the Pareto front)", "",
              f"| config | method | schedule | sparsity | bits | accuracy | {_label(objective)} | bit-exact | front |",
              "|---|---|---|---:|---:|---:|---:|---|---|"]
    for p in sorted(summary["points"], key=lambda p: p["objective"]):
        lines.append(f"| {p['config']} | {p['method']} | {p['schedule']} | {p['sparsity']:g} | {p['bits']} | "
                     f"{p['accuracy']:.2%} ± {p['accuracy_sd']:.2%} | {p['objective']:.6g} | "
                     f"{'yes' if p['bit_exact'] else 'NO'} | {'*' if p['on_front'] else ''} |")
    lines += ["", "## Trials", "", "| trial | float accuracy | accuracy | sparsity | flash B | objective | s | note |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in summary["trials"]:
        if r.get("error"):
            lines.append(f"| {r['id']} | | | | | | | failed: {r['error']} |")
            continue
        lines.append(f"| {r['id']} | {r['float_accuracy']:.2%} | {r['accuracy']:.2%} | {r['sparsity_achieved']:.1%} | "
                     f"{r['flash_bytes'] if r['flash_bytes'] is not None else ''} | {r['objective']:.6g} | "
                     f"{r['seconds']:.1f} | {_note(r)} |")
    run = summary["run"]
    lines += ["", f"{run['trials_run']} trials run now, {run['trials_resumed']} finished before; "
                  f"{run['wall_seconds']} s wall, {run['trial_seconds']} s in trials on {run['workers']} worker CPU(s).", ""]
    return "\n".join(lines)


def render_plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objective = summary["objective"]
    points = summary["points"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    methods = sorted({p["method"] for p in points})
    markers = dict(zip(methods, "osD^v<>"))
    for method in methods:
        mine = [p for p in points if p["method"] == method]
        ax.errorbar([p["objective"] for p in mine], [p["accuracy"] * 100 for p in mine],
                    yerr=[p["accuracy_sd"] * 100 for p in mine], fmt=markers[method], alpha=0.55,
                    capsize=2, label=method)
    front = sorted((p for p in points if p["on_front"]), key=lambda p: p["objective"])
    if front:
        ax.step([p["objective"] for p in front], [p["accuracy"] * 100 for p in front], where="post", color="k",
                lw=1.2, label="Pareto front")
    if summary["best"]:
        b = summary["best"]
        ax.plot([b["objective"]], [b["accuracy"] * 100], "*", ms=16, color="gold", mec="k", label="best")
    ax.axhline(summary["spec"]["min_accuracy"] * 100, ls="--", color="gray", lw=1, label="bar")
    ax.set_xlabel(f"{_label(objective)}, lower is better")
    ax.set_ylabel("test accuracy, fixed point (%)")
    ax.set_title(f"{summary['spec']['name']} on {summary['spec']['target']}: "
                 f"error bars ±1 sample SD over {summary['spec']['seeds']} seed(s)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def foreign_content(folder: Path) -> Optional[str]:
    """Why ``folder`` is not wholly a sweep's (None when it is): no spec, or anything a
    sweep does not write, at any depth (a user's file in trials/ counts)."""
    folder = Path(folder)
    if not (folder / SPEC_FILE).is_file():
        return f"it holds no {SPEC_FILE}, so it is not a sweep folder"
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if entry.is_symlink():
            return f"it holds {name}, which hwprune did not write"
        if name in (SPEC_FILE, SWEEP_JSON, SWEEP_MD, SWEEP_PNG) and entry.is_file():
            continue
        if is_temporary_sibling(entry) or name in _PARTIALS:  # left by a kill
            continue
        if name == TRIALS_DIR and entry.is_dir():
            why = trial_foreign(entry)
        elif name == BEST_DIR and entry.is_dir():
            why = export_foreign(entry)
            why = why and f"{BEST_DIR}/ is not an export hwprune wrote ({why})"
        else:
            why = f"it holds {name}, which hwprune did not write"
        if why:
            return why
    return None


def _partial(name: str) -> str:
    stem, dot, suffix = name.rpartition(".")
    return f".{stem}.partial{dot}{suffix}"  # the suffix stays last: matplotlib picks the format by it


_PARTIALS = {_partial(n) for n in (SWEEP_JSON, SWEEP_MD, SWEEP_PNG)}


def _write(path: Path, write) -> None:
    """``write(tmp)`` then rename: a kill never leaves a half-written summary file."""
    tmp = path.with_name(_partial(path.name))
    write(tmp)
    os.replace(tmp, path)


def write_outputs(out: Path, summary: dict) -> None:
    _write(out / SWEEP_JSON, lambda p: p.write_text(json.dumps(summary, indent=1) + "\n"))
    _write(out / SWEEP_MD, lambda p: p.write_text(render_markdown(summary)))
    _write(out / SWEEP_PNG, lambda p: render_plot(summary, p))
    trial = best_trial(summary)
    if trial is None:
        shutil.rmtree(out / BEST_DIR, ignore_errors=True)
        return
    with output_dir(out / BEST_DIR, force=True, with_manifest=False) as staged:  # swapped in whole, or not at all
        shutil.copytree(out / TRIALS_DIR / trial["id"] / "export", staged, dirs_exist_ok=True)
