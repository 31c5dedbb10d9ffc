"""``hwprune predict``: outputs of one engine, dequantized to float32."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hwprune.errors import OptionError
from hwprune.manifest import check
from hwprune.outputs import check_target, output_file


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="run an exported model on inputs and write its outputs")
    p.add_argument("dir", metavar="DIR", help="an export folder")
    p.add_argument("--inputs", required=True, metavar="X.npy", help="float inputs (N, *input_shape), in the source model's layout (N, C, H, W for a torch conv model)")
    p.add_argument("--out", required=True, metavar="Y.npy", help="where to write the float32 outputs, (N, *output_shape) in the source "
                                                                "model's layout (a conv output as N, C, H, W for torch)")
    p.add_argument("--engine", default="reference",
                   help="reference (numpy integers), host (compiled C), mcu (Cortex-M firmware in the emulator) or "
                        "hls4ml (C simulation of DIR/hls4ml); an int8 (.tflite) export: reference, tflm (TFLite "
                        "Micro's interpreter), host or mcu")
    p.add_argument("--target", metavar="NAME|PATH", help="the Cortex-M target of the mcu engine (default: the export's)")
    p.add_argument("--force", action="store_true", help="replace Y.npy if it exists")
    p.add_argument("--trust-export", action="store_true",
                   help="compile and run the folder's C and hls4ml project as they are (only for folders you trust); "
                        "by default they must equal what hwprune regenerates from the folder's graph and options")
    p.set_defaults(run=run)


def run(args) -> int:
    from hwprune import reference
    from hwprune.harness import get_engine
    from hwprune.ir.io import load_graph
    from hwprune.exportdir import C_DIR, load_array
    from hwprune.ir.fixed import to_real

    import hwprune.backends.builtin  # noqa: F401 (check_code regenerates the code of every registered backend)
    from hwprune.harness.regenerate import check_code

    if args.target is not None and args.engine != "mcu":
        raise OptionError(f"--target chooses the chip of the mcu engine; --engine {args.engine} does not use it "
                          "(add --engine mcu or drop --target)")
    if Path(args.out).suffix != ".npy":
        raise OptionError(f"--out {args.out}: predict writes a NumPy array; give a file name ending in .npy")
    check(Path(args.dir))
    check_target(Path(args.out), args.force, (args.dir, args.inputs), folder=False)
    if args.engine != "reference":  # an engine that compiles or runs the folder's code
        check_code(Path(args.dir), args.trust_export)
    graph = load_graph(args.dir)
    from hwprune.pipeline_int8 import is_int8_export

    if is_int8_export(args.dir):  # TFLite's int8 dialect: inputs quantized as TFLite's QUANTIZE does
        if args.engine not in INT8_ENGINES:
            raise OptionError(f"--engine {args.engine}: an int8 (.tflite) export runs on {', '.join(INT8_ENGINES)}")
        x = graph.check_batch(load_array(args.inputs, "inputs"), f"inputs ({args.inputs})", single_ok=True)
        y_int = _int8_outputs(Path(args.dir), graph, graph.input_t.quantize(x), args.engine, args.target)
        y = graph.output_t.to_real(y_int).astype(np.float32)
        with output_file(args.out, args.force, inputs=(args.dir, args.inputs)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, y)
        return 0
    if args.engine == "mcu":
        from hwprune.harness.mcu import McuEngine

        engine = McuEngine(target=args.target, trace=False, progress=True)
    else:
        engine = get_engine(args.engine)
    x = load_array(args.inputs, "inputs")  # the source model's layout; quantize_input checks it
    y_int = engine.run(Path(args.dir) / C_DIR, reference.quantize_input(graph, x, f"inputs ({args.inputs})")).outputs
    y = to_real(y_int, graph.output_t).astype(np.float32).reshape(len(y_int), *graph.output_shape)
    if len(graph.output_shape) > 1:
        y = graph.to_source(y)  # a model ending in a conv or pooling: its outputs in the source layout (NCHW)
    with output_file(args.out, args.force, inputs=(args.dir, args.inputs)) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, y)
    return 0


INT8_ENGINES = ("reference", "tflm", "host", "mcu")


def _int8_outputs(folder: Path, graph, x_int, engine: str, target):
    """An int8 export's outputs on ``engine``: the reference, TFLM's interpreter on the folder's
    .tflite, its C on the host, or its C on a Cortex-M core in the emulator (``target``, else
    the export's chip)."""
    from hwprune.exportdir import C_DIR, EXPORT_FILE
    from hwprune.harness import get_engine
    from hwprune.tempdirs import temp_dir

    if engine in ("reference", "tflm"):
        return get_engine(engine).run(graph if engine == "reference" else folder, x_int).outputs

    with temp_dir("predict-int8") as work:
        if engine == "host":
            from hwprune.harness.host_int8 import run_host

            return run_host(graph, folder / C_DIR, x_int, Path(work))[-1][1]
        from hwprune.harness.mcu_int8 import run_mcu
        from hwprune.pipeline_int8 import int8_engines

        meta = json.loads((folder / EXPORT_FILE).read_text())
        _, chip = int8_engines(meta, ["mcu"], target)
        return run_mcu(graph, folder / C_DIR, x_int, Path(work), chip, cc=meta.get("cc"), progress=True).outputs
