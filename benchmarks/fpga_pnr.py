"""The jet tagger through the open FPGA flow: RTL, Verilator, yosys + nextpnr.

For each model: ``export --backend rtl`` at 8 bits (1,000 standard-normal test vectors, the
tagger's 16 inputs), ``verify --engine verilator`` on all of them, then ``resources
--place-and-route`` on a part (default the ECP5-85F). Prints one table: routed LUTs beside
the DA estimate, FFs, Fmax, latency, the wall time of synthesis and place-and-route, and
the ratio pruning buys against the dense model. Long (the dense model takes minutes):
not a test.

    python -m benchmarks.fpga_pnr [--part lfe5u85f] [--models pruned95,file95,dense] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

# ../shared/models beside the checkout (or beside the folder of worktrees)
MODELS = next((p / "shared" / "models" for p in Path(__file__).resolve().parents[1:4]
               if (p / "shared" / "models").is_dir()), Path("../shared/models"))
CASES = {
    # name: (weights file, one-shot magnitude sparsity)
    "pruned95": ("KERAS_3layer_weights.h5", 0.95),
    "file95": ("KERAS_3layer_95pruned_retrained_weights.h5", None),
    "dense": ("KERAS_3layer_weights.h5", None),
}


def run_case(name: str, out: Path, part: str, models: Path, vectors: int, clock_mhz: float) -> dict:
    from hwprune.backends.rtl import RtlOptions
    from hwprune.harness import verify
    from hwprune.backends.c.options import COptions
    from hwprune.pipeline import ExportOptions, export_model, load_model
    from hwprune.targets import get_target
    from hwprune.cli.resources import _place_and_route

    weights, sparsity = CASES[name]
    x = np.random.default_rng(0).normal(size=(vectors, 16))
    graph = load_model(models / "KERAS_3layer.json", weights=models / weights)
    start = time.perf_counter()
    folder = export_model(graph, out / name, x, ExportOptions(weight_bits=8, activation_bits=8, sparsity=sparsity),
                          force=True, source=str(models / weights),
                          backends=(COptions(compile=False), RtlOptions(clock_mhz=clock_mhz)))
    export_s = time.perf_counter() - start
    vec = np.load(folder / "vectors.npz")
    start = time.perf_counter()
    result = verify(folder / "c", vec["x_int"], engines=["verilator"], stored_outputs=vec["y_int"])
    verilator_s = time.perf_counter() - start
    routed = _place_and_route(folder, load_model(folder), get_target(part))
    rtl = json.loads((folder / "rtl" / "rtl.json").read_text())
    return {"model": name, "nonzero": int(sum(np.count_nonzero(l.weight) for l in load_model(folder).weighted_layers())),
            "vectors": result.vectors, "bit_exact": result.bit_exact, "stages": rtl["stages"],
            "export_s": round(export_s, 1), "verilator_s": round(verilator_s, 1), **routed}


def table(rows: list[dict]) -> str:
    lines = ["| model | nonzero | Verilator | LUT placed | LUT4 logic | LUT est. | placed / est. | FF | FF est. "
             "| FF / est. | Fmax MHz | latency | synth s | pnr s |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lat = f"{r['latency_cycles']} cyc, {r['latency_ns_at_fmax']:.0f} ns" if r["latency_ns_at_fmax"] else "-"
        lines.append(f"| {r['model']} | {r['nonzero']} | {'bit-exact' if r['bit_exact'] else 'MISMATCH'} on "
                     f"{r['vectors']} | {r['lut']:,} | {r['lut_logic']:,} | {r['estimate']['lut']:,} | "
                     f"{r['lut'] / r['estimate']['lut']:.2f} | {r['ff']:,} | {r['estimate']['ff']:,} | "
                     f"{(r['ff'] - r['wrapper_ff']) / r['estimate']['ff']:.2f} | {r['fmax_mhz']} | {lat} | "
                     f"{r['synthesis']['seconds']:.0f} | {r['place_and_route']['seconds']:.0f} |")
    dense = next((r for r in rows if r["model"] == "dense"), None)
    for r in rows:
        if dense is not None and r is not dense:
            lines.append(f"\n{r['model']} against dense: {dense['lut'] / r['lut']:.1f}x fewer LUTs, "
                         f"Fmax {r['fmax_mhz'] / dense['fmax_mhz']:.2f}x")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="lfe5u85f")
    parser.add_argument("--models", default="pruned95,file95,dense")
    parser.add_argument("--model-dir", type=Path, default=MODELS)
    parser.add_argument("--vectors", type=int, default=1000)
    parser.add_argument("--clock-mhz", type=float, default=200.0)
    parser.add_argument("--out", type=Path, default=Path("fpga_pnr_out"))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models.split(","):
        rows.append(run_case(name, args.out, args.part, args.model_dir, args.vectors, args.clock_mhz))
        print(f"{name}: done", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
