"""hwprune against emlearn on the Cortex-M4: the digits MLP 64-256-128-10.

    python benchmarks/mcu_emlearn.py [--vectors 100] [--formats auto,csr8,csr,rice,unrolled]

Same data (sklearn's digits, hwprune.data's 80/20 stratified split, pixels scaled to
[0, 1]), same architecture, same emulator, same compiler (zig's clang -O2, Cortex-M4):

- hwprune: trained, pruned to 90 % (global magnitude, fine-tuned), 8-bit fixed point,
  exported as C once per storage format in ``--formats`` (every layer in that format;
  ``auto`` is what ``hwprune export`` chooses by default, ``--optimize balanced``),
  each export verified bit-exact in the emulator on the measured vectors;
- emlearn: scikit-learn's MLPClassifier (float, dense) converted by emlearn
  (``emlearn.convert(method="inline")``), built for the M4 with its FPU.

Prints accuracy, instructions and cycles per inference (mean over the vectors) and flash
of each, and each export's ratios to emlearn. Needs the ``bench`` extra (emlearn).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
TARGET = "stm32l4r5"
SIZES = (64, 256, 128, 10)


def hwprune_side(root: Path, vectors: int, seed: int, formats: list[str]):
    from hwprune.backends.c import export_c, load_export
    from hwprune.demo import DemoConfig, run_demo
    from hwprune.harness import verify
    from hwprune.harness.mcu import McuEngine, measure_mcu

    config = DemoConfig(sizes=SIZES, sparsity=0.9, seed=seed)
    report = run_demo(root / "hwprune_digits", config=config)
    with np.load(root / "hwprune_digits" / "vectors.npz") as data:
        x_int = data["x_int"][:vectors]
    graph = load_export(root / "hwprune_digits" / "c")
    measured = {}
    for fmt in formats:
        out = root / f"hwprune_{fmt}"
        export_c(graph, out, fmt)
        comparison = verify(out, x_int, [McuEngine(target=TARGET)]).comparison("mcu")
        if not comparison.bit_exact:
            raise SystemExit(f"the {fmt} export is not bit-exact in the emulator:\n{comparison.report()}")
        measured[fmt] = measure_mcu(out, TARGET, x_int, progress=True)
    accuracy = {s["stage"]: s["accuracy"] for s in report["stages"]}
    return report, measured, accuracy


def emlearn_side(root: Path, data, vectors: int, seed: int):
    import emlearn
    from sklearn.neural_network import MLPClassifier

    from hwprune.harness.cross import link_firmware
    from hwprune.harness.cycles import get_cycle_table
    from hwprune.harness.emulator import emulate
    from hwprune.targets import get_target

    model = MLPClassifier(hidden_layer_sizes=SIZES[1:-1], activation="relu", max_iter=300, random_state=seed)
    with np.errstate(all="ignore"):  # hwprune raises on float underflow; scikit-learn's Adam underflows
        model.fit(data.x_train, data.y_train)
        reference_prediction = model.predict(data.x_test)
    accuracy = float(np.mean(reference_prediction == data.y_test))
    build = root / "emlearn"
    build.mkdir()
    emlearn.convert(model, method="inline", dtype="float").save(file=str(build / "emlearn_model.h"), name="digits")
    emlearn_dir = Path(emlearn.__file__).parent
    target = get_target(TARGET)
    fw = link_firmware([HERE / "c" / "emlearn_harness.c", HERE / "c" / "libc" / "libm_extra.c"],
                       [build, HERE / "c" / "libc", emlearn_dir], target.cpu, (f"EMLEARN_FEATURES={SIZES[0]}",),
                       "-O2", fpu=True, strict=False, depends=[build / "emlearn_model.h", emlearn_dir / "eml_net.h"])
    x = data.x_test[:vectors].astype(np.float32)
    run = emulate(fw, x, "float", "int32_t", 1, [], get_cycle_table(target.cpu), progress=True)
    predicted = run.outputs[:, 0].astype(np.int64)
    agree = float(np.mean(predicted == reference_prediction[:vectors]))
    return {"accuracy": accuracy, "instructions": float(run.instructions.sum(axis=1).mean()),
            "cycles": float(run.cycles.sum(axis=1).mean()), "flash_bytes": fw.flash_bytes,
            "ram_bytes": fw.static_ram_bytes + run.stack_bytes, "agreement_with_sklearn": agree}


def label(fmt: str) -> str:
    return "auto (default)" if fmt == "auto" else fmt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100, help="test images emulated per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formats", default="auto,csr8,csr,rice,unrolled",
                        help="hwprune storage formats, one export each (every layer in that format; auto: what "
                             "export chooses by default, --optimize balanced)")
    args = parser.parse_args(argv)
    try:
        import emlearn  # noqa: F401
    except ImportError:
        print("emlearn is missing: pip install 'hwprune[bench]'", file=sys.stderr)
        return 2
    from hwprune.data import load_dataset

    data = load_dataset("digits", seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="hwprune-bench-") as tmp:
        root = Path(tmp)
        formats = [f.strip() for f in args.formats.split(",") if f.strip()]
        report, ours, accuracy = hwprune_side(root, args.vectors, args.seed, formats)
        if not report["bit_exact"]:
            print("the hwprune export is not bit-exact; no figures", file=sys.stderr)
            return 1
        theirs = emlearn_side(root, data, args.vectors, args.seed)
    dense_float = accuracy["dense float"]
    ours_acc = [v for k, v in accuracy.items() if "fixed point" in k][0]
    print(f"digits MLP {'-'.join(map(str, SIZES))} on {TARGET} (Cortex-M4), {args.vectors} test images, "
          f"zig clang -O2")
    print(f"{'':<38} {'accuracy':>9} {'instructions':>13} {'cycles':>10} {'flash B':>9} {'RAM B':>7}")
    print(f"{'emlearn MLP (float, dense)':<38} {theirs['accuracy'] * 100:>8.2f}% {theirs['instructions']:>13.0f} "
          f"{theirs['cycles']:>10.0f} {theirs['flash_bytes']:>9} {theirs['ram_bytes']:>7}")
    for fmt, m in ours.items():
        print(f"{'hwprune ' + label(fmt) + ' (90 %, int8)':<38} {ours_acc * 100:>8.2f}% {m.instructions:>13.0f} "
              f"{m.cycles:>10.0f} {m.flash_bytes:>9} {m.ram_bytes:>7}")
    for fmt, m in ours.items():
        print(f"{'hwprune ' + label(fmt) + ' / emlearn':<38} {'':>9} {m.instructions / theirs['instructions']:>13.3f} "
              f"{m.cycles / theirs['cycles']:>10.3f} {m.flash_bytes / theirs['flash_bytes']:>9.3f}")
    both = [label(f) for f, m in ours.items() if m.instructions <= 0.1 * theirs["instructions"]
            and m.flash_bytes <= 0.06 * theirs["flash_bytes"]]
    print(f"at most 0.1x emlearn's instructions and 0.06x its flash in one export: {', '.join(both) or 'none'}")
    print(f"hwprune's dense float model: {dense_float * 100:.2f} % (pruned int8 minus dense float: "
          f"{(ours_acc - dense_float) * 100:+.2f} points); "
          f"emlearn's emulated predictions equal scikit-learn's on {theirs['agreement_with_sklearn'] * 100:.0f} % "
          f"of the images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
