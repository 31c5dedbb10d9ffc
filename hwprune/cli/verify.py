"""``hwprune verify``: run every available engine and compare bit for bit."""

from __future__ import annotations

import json
import sys

# The fields of ``verify --json`` that scripts rely on (a contract).
JSON_FIELDS = ("bit_exact", "vectors", "mismatches", "flash_bytes", "ram_bytes", "macs", "nonzero_weights",
               "total_weights", "layers", "energy_proxy_pj", "weight_memory_bits", "dense_weight_memory_bits")
# Added when the mcu engine ran (per inference, mean over the vectors; layers gain
# "instructions" and "cycles").
MCU_JSON_FIELDS = ("instructions", "cycles", "latency_us", "energy_uj", "stack_bytes", "arena_bytes")


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="check that every engine equals the integer reference, bit for bit",
                       description="Exit 0 only when every available engine agrees with the integer "
                                   "reference on every element of every test vector.")
    p.add_argument("dir", metavar="DIR", help="an export folder")
    p.add_argument("--inputs", metavar="X.npy", help="float inputs to use instead of the stored test vectors")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--engine", action="append", metavar="NAME",
                   help="an engine to compare with the reference (repeatable; default: host, plus mcu when the "
                        "export was made for a Cortex-M target and its toolchain is installed)")
    p.add_argument("--target", metavar="NAME|PATH", help="the Cortex-M target of the mcu engine (default: the export's)")
    p.add_argument("--cc", choices=["clang", "gcc"],
                   help="the mcu engine's cross compiler (default: the export's --cc, else clang from ziglang)")
    p.add_argument("--trust-export", action="store_true",
                   help="compile and run the folder's C and hls4ml project as they are (only for folders you trust); "
                        "by default they must equal what hwprune regenerates from the folder's graph and options")
    p.set_defaults(run=run)


def run(args) -> int:
    from hwprune.exportdir import load_array
    from hwprune.report import analyze, json_default

    from hwprune.pipeline_int8 import is_int8_export, run_verify

    if is_int8_export(args.dir):  # a .tflite model's export: TFLite's int8 dialect
        return run_verify(args)
    inputs = load_array(args.inputs, "inputs") if args.inputs else None
    report = analyze(args.dir, inputs, target=args.target, engines=args.engine, cc=args.cc,
                     compile=True,  # also a folder exported with --no-compile
                     inputs_name=f"inputs ({args.inputs})", trust_export=args.trust_export,
                     baseline=False)  # the all-dense firmware is the report's comparison, not a verdict
    if args.json:
        print(json.dumps(report, default=json_default))
    else:
        for name, engine in report["engines"].items():
            state = "unavailable" if not engine["available"] else ("bit-exact" if engine["bit_exact"] else "MISMATCH")
            print(f"{name:<10} {state}" + (f"  {engine['note']}" if engine.get("note") else ""))
        if report.get("mcu"):
            m = report["mcu"]
            print(f"mcu        {m['target']} ({m['core']}): {m['instructions']:.0f} instructions, {m['cycles']:.0f} cycles, "
                  f"{m['latency_us']:.1f} us, {m['energy_uj']:.3f} uJ per inference; flash {m['flash_bytes']} B, "
                  f"RAM {m['ram_bytes']} B (stack {m['stack_bytes']} B)")
        print(f"{report['vectors']} vectors, {report['mismatches']} mismatching outputs: "
              f"{'bit-exact' if report['bit_exact'] else 'NOT bit-exact'}")
    if not report["bit_exact"]:
        print(f"hwprune verify: {report['mismatches']} mismatching outputs; see the engine notes", file=sys.stderr)
    return 0 if report["bit_exact"] else 1
