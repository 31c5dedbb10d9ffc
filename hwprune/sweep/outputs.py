"""A finished sweep's outputs: sweep.json, sweep.md, the Pareto plot and best/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional

from hwprune.sweep.pareto import Point, aggregate, best_point, pareto_front
from hwprune.sweep.runner import TRIALS_DIR, SweepRun
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
              f"| config | method | schedule | sparsity | bits | accuracy | {objective['name']} ({unit}) | bit-exact | front |",
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
    ax.set_xlabel(f"{objective['name']} ({objective['unit']}, lower is better)")
    ax.set_ylabel("test accuracy, fixed point (%)")
    ax.set_title(f"{summary['spec']['name']} on {summary['spec']['target']}: "
                 f"error bars ±1 sample SD over {summary['spec']['seeds']} seed(s)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(out: Path, summary: dict) -> None:
    (out / SWEEP_JSON).write_text(json.dumps(summary, indent=1) + "\n")
    (out / SWEEP_MD).write_text(render_markdown(summary))
    render_plot(summary, out / SWEEP_PNG)
    best = out / BEST_DIR
    if best.exists():
        shutil.rmtree(best)
    trial = best_trial(summary)
    if trial is not None:
        shutil.copytree(out / TRIALS_DIR / trial["id"] / "export", best)
