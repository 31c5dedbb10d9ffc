"""``hwprune demo``: the whole pipeline on the digits set that scikit-learn ships.

Train a 64-128-64-10 MLP, prune it to 90 % (global magnitude), fine-tune with the masks
fixed, quantize to 8 bits, export C, verify it bit for bit against the integer reference
on the host and, for the default Cortex-M4 target, in the emulator (flash, RAM, cycles,
latency and energy measured), and write report.md / report.json / report.png.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from hwprune import reference
from hwprune.backends.c.formats import choose_formats
from hwprune.backends.c.options import COptions
from hwprune.data import load_dataset
from hwprune.energy import export_proxy, float_proxy
from hwprune.errors import OptionError
from hwprune.outputs import check_target
from hwprune.pipeline import ExportOptions, write_export
from hwprune.prune.train import evaluate, fit, make_mlp
from hwprune.quant.calibrate import QuantConfig, calibrate


@dataclass(frozen=True)
class DemoConfig:
    sizes: tuple[int, ...] = (64, 128, 64, 10)
    sparsity: float = 0.9
    scope: str = "global"
    min_density: float = 0.02
    train_epochs: int = 40
    finetune_epochs: int = 30
    lr: float = 2e-3
    weight_bits: int = 8
    activation_bits: int = 8
    seed: int = 0
    # The export's choices (as ``hwprune export``): a Cortex-M target runs the firmware in
    # the emulator and adds flash, RAM, cycles, latency and energy measured on that chip.
    target: Optional[str] = "stm32l4r5"
    format: str = "auto"
    optimize: str = "balanced"

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**32 - 1:  # scikit-learn's split takes 0 .. 2**32 - 1; fine-tuning uses seed + 1
            raise OptionError(f"--seed must be an integer from 0 to {2**32 - 2}, got {self.seed}")
        if self.format == "nm":  # known before the training: the demo's magnitude masks have no N:M pattern
            raise OptionError("--format nm stores N:M masks, and the demo prunes by unstructured magnitude; use "
                              "hwprune prune --method nm, then hwprune export --format nm")


def _say(message: str) -> None:
    print(f"hwprune demo: {message}", file=sys.stderr, flush=True)


def run_demo(out, force: bool = False, config: DemoConfig = DemoConfig()) -> dict:
    import torch

    check_target(Path(out), force)  # fail before the training, not after
    started = time.perf_counter()
    # Small matrices: one thread is faster than several fighting over the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(out, force, config, started)
    finally:
        torch.set_num_threads(threads)


def _run(out, force: bool, config: DemoConfig, started: float) -> dict:
    # torch and the pruning modules (which import it) load when the demo runs: importing torch takes seconds
    from hwprune.frontends.torch import from_torch  # imports torch (seconds): loaded when this runs
    import torch

    from hwprune.prune.criteria import compute_masks
    from hwprune.prune.masks import apply_masks, sparsity, strip_masks

    torch.manual_seed(config.seed)
    data = load_dataset("digits", seed=config.seed)
    _say(f"digits: {len(data.x_train)} training and {len(data.x_test)} test images of 8x8 pixels")
    stages = []

    def stage(name: str, accuracy: float, model_sparsity: float, proxy) -> None:
        stages.append({"stage": name, "accuracy": float(accuracy), "sparsity": float(model_sparsity),
                       "energy_proxy_pj": proxy.total(), "energy_model": proxy.description})
        _say(f"{name}: test accuracy {accuracy * 100:.2f} % at {model_sparsity * 100:.1f} % sparsity, "
             f"energy proxy {proxy.total() / 1e3:.1f} nJ per inference ({proxy.description})")

    model = make_mlp(config.sizes, seed=config.seed)
    fit(model, data.x_train, data.y_train, config.train_epochs, lr=config.lr, seed=config.seed, progress=True)
    stage("dense float", evaluate(model, data.x_test, data.y_test), 0.0, float_proxy(from_torch(model)))

    masks = compute_masks(model, config.sparsity, method="magnitude", scope=config.scope,
                          min_density=config.min_density)
    apply_masks(model, masks)
    before_finetuning = evaluate(model, data.x_test, data.y_test), sparsity(model)[0]
    fit(model, data.x_train, data.y_train, config.finetune_epochs, lr=config.lr / 2, seed=config.seed + 1,
        progress=True)
    achieved, per_layer = sparsity(model)
    accuracy = evaluate(model, data.x_test, data.y_test)
    graph = from_torch(strip_masks(model), name="digits_mlp")
    # The masks stay fixed while fine-tuning: before and after, the same weights are zero.
    stage("pruned, before fine-tuning", *before_finetuning, float_proxy(graph, sparse=True))
    stage("pruned, fine-tuned (float)", accuracy, achieved, float_proxy(graph, sparse=True))
    quantized = calibrate(graph, data.x_train, QuantConfig(config.weight_bits, config.activation_bits))
    y_ref = reference.predict(quantized, data.x_test)
    q_accuracy = float(np.mean(y_ref.argmax(axis=1) == data.y_test))
    formats = {s.name: s.format for s in choose_formats(quantized, config.format, config.optimize)}  # as the export
    stage(f"pruned, {config.weight_bits}-bit fixed point (integer reference)", q_accuracy, achieved,
          export_proxy(quantized, formats))

    where = f"on the host and, for {config.target}, in the Cortex-M emulator" if config.target else "on the host"
    _say(f"exporting C, compiling it {where} and comparing every output with the reference")
    options = ExportOptions(config.weight_bits, config.activation_bits, config.sparsity, target=config.target,
                            task="classification")
    extra = {
        "stages": stages,
        "demo": {
            "dataset": "sklearn.datasets.load_digits, 80/20 stratified split",
            "architecture": "-".join(map(str, config.sizes)),
            "pruning": f"one-shot global magnitude to {config.sparsity:.0%}, min density {config.min_density}, "
                       f"fine-tuned {config.finetune_epochs} epochs with the masks fixed",
            "per_layer_sparsity": per_layer,
            "accuracy_drop_points": (stages[0]["accuracy"] - q_accuracy) * 100,
        },
    }
    exported = write_export(quantized, out, data.x_test, options, force=force, source="hwprune demo",
                            report_extra=extra, float_graph=graph,
                            backends=(COptions(format=config.format, optimize=config.optimize),))
    # The folder is complete and its manifest written: the run's time is said, not stored.
    out, report = exported.folder, exported.report
    _say(f"{'bit-exact' if report['bit_exact'] else 'NOT bit-exact'} on {report['vectors']} test vectors; "
         f"weights {report['weight_bytes']} B as exported vs {report['dense_weight_bytes']} B dense; "
         f"{time.perf_counter() - started:.1f} s")
    if report.get("mcu"):
        m = report["mcu"]
        _say(f"on {m['target']}: flash {report['flash_bytes']} B, RAM {report['ram_bytes']} B, "
             f"{report['cycles']:.0f} cycles = {report['latency_us']:.1f} us and {report['energy_uj']:.3f} uJ "
             "per inference")
    _say(f"wrote {out}/report.md, report.json, report.png and the C sources in {out}/c/")
    return report
