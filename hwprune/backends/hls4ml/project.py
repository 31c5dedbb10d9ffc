"""Write an hls4ml project for a quantized graph, plus what hwprune adds to it.

``export_hls4ml(graph, out_dir, options, x_int, y_int)`` writes::

    out_dir/            hls4ml's project (firmware/, build_prj.tcl, build_lib.sh, ...)
    out_dir/README.md   the layers, their types and the build steps (templates/hls4ml)
    out_dir/build.sh    synthesis with Vitis or Vivado HLS, when installed
    out_dir/tb_data/    testbench inputs and the integer reference's outputs
    out_dir/hwprune_hls4ml.json   options, versions, per-layer costs, file hashes

The project is byte-identical for the same graph and options: hls4ml's random library
stamp is replaced by a hash, and no absolute path is left in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import sys
from pathlib import Path

import numpy as np

import hwprune
from hwprune.backends.hls4ml.clip import clip_layer
from hwprune.backends.hls4ml.compressed import compress_layer
from hwprune.backends.hls4ml.convert import WEIGHTED, build_model, stamp
from hwprune.backends.hls4ml.iotype import resolve_io_type
from hwprune.backends.hls4ml.sparsity import layer_cost
from hwprune.errors import ModelError, OptionError, WeightError
from hwprune.hls4ml_options import HlsOptions
from hwprune.ir.graph import Graph
from hwprune.paths import templates_dir
from hwprune.ir.fixed import from_grid, to_real
from hwprune.reference import dense_integers, dense_sum

SUMMARY = "hwprune_hls4ml.json"
SUMMARY_FORMAT = "hwprune-hls4ml-project"
SOFTMAX_NOTE = ("The project ends at the logits: hwprune's integer reference ends there too (softmax does not "
                "change the argmax), so C simulation can equal it bit for bit.")


def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "hls4ml")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _check_order_free(graph: Graph, options: HlsOptions) -> None:
    """Resource and DA (and hls4ml's convolutions under any strategy) sum the products in
    another order than the reference: allowed only where the order cannot change a bit
    (exact products, an accumulator that never overflows or wraps)."""
    for layer in graph.layers:
        strategy = options.strategy_of(layer.name)
        if layer.kind not in WEIGHTED or (strategy == "latency" and layer.kind == "dense"):
            continue
        (in_t,) = graph.input_types(layer)
        w, acc0 = dense_integers(layer)
        if not dense_sum(layer, in_t, w.reshape(w.shape[0], -1), acc0).fast:
            raise OptionError(
                f"layer {layer.name!r}: its accumulator {layer.accum_t} can round or saturate, so the {strategy} "
                "strategy's summation order could change the result; use --strategy latency or a wider accumulator")


def _storage(layer, cost, options: HlsOptions) -> str:
    if options.strategy_of(layer.name) != "resource":
        return "constants in logic"
    if layer.kind != "dense":
        return "dense"
    if options.storage == "compressed" or (options.storage == "auto" and cost.coo_memory_bits < cost.dense_memory_bits):
        return "compressed"
    return "dense"


def _check_weight_files(project: Path, model, graph: Graph, compressed: set) -> None:
    """hls4ml prints weights as decimals; read them back and compare with the grid integers."""
    nodes = {node.name: node for node in model.get_layers()}
    for layer in graph.layers:
        if layer.kind not in WEIGHTED or layer.name not in nodes:
            continue
        node = nodes[layer.name]
        for key, values, t in (("weight", layer.weight.T, layer.weight_t), ("bias", layer.bias, layer.bias_t)):
            if key == "weight" and layer.name in compressed:
                continue
            var = node.weights.get(key)
            path = project / "firmware" / "weights" / f"{var.name}.txt" if var is not None else None
            if path is None or not path.is_file():
                continue  # DA writes weights into the adder trees, not into files
            written = from_grid(np.array([float(v) for v in path.read_text().replace(",", " ").split()]), t, path.name)
            # hls4ml may reorder weights for its kernels (Resource transposes them): the file must
            # print hls4ml's array exactly, and that array must hold the quantized values.
            held = from_grid(np.asarray(var.data, dtype=np.float64).ravel(), t, f"hls4ml's {var.name}")
            ours = from_grid(np.asarray(values, dtype=np.float64).ravel(), t, f"layer {layer.name!r} {key}")
            if not (np.array_equal(written, held) and np.array_equal(np.sort(held), np.sort(ours))):
                raise WeightError(f"layer {layer.name!r}: hls4ml wrote {key} values to {path.name} that differ "
                                  f"from the quantized ones")


def _hashes(project: Path) -> dict[str, str]:
    return {str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(project.rglob("*")) if p.is_file() and p.name != SUMMARY}


def _tb_rows(values: np.ndarray, t) -> list[list[str]]:
    reals = to_real(values.reshape(values.shape[0], -1), t)
    return [[np.format_float_positional(v, unique=True, trim="0") for v in row] for row in reals]


@contextlib.contextmanager
def _without_keras():
    """Let hls4ml's writer skip importing Keras, unless something imported it already.

    hls4ml's YAML writer imports keras only to register how a Keras model object is
    saved; hwprune's project config holds none, and on the torch backend the import alone
    takes seconds. A ``None`` entry in ``sys.modules`` makes that import fail at once,
    which the writer catches.
    """
    if "keras" in sys.modules:
        yield
        return
    sys.modules["keras"] = None
    try:
        yield
    finally:
        if sys.modules.get("keras", 0) is None:
            del sys.modules["keras"]


def export_hls4ml(graph: Graph, out_dir, options: HlsOptions, x_int: np.ndarray, y_int: np.ndarray,
                  trace: bool = False) -> dict:
    """Write the project into ``out_dir`` (created; it must not exist) and return its summary.

    ``trace``: a twin for diagnosis, whose C simulation also hands back every layer's
    output (hls4ml's trace hooks, compiled out of synthesis); never the exported project."""
    import hls4ml

    out_dir = Path(out_dir)
    if out_dir.exists():
        raise ModelError(f"{out_dir} exists already")
    options = resolve_io_type(graph, options)
    _check_order_free(graph, options)
    for t in (graph.input_t, graph.output_t):
        if t.width > 53:
            raise OptionError(f"type {t} is wider than 53 bits: C simulation passes values as doubles")
    project = graph.name
    with contextlib.redirect_stdout(io.StringIO()):  # hls4ml prints progress on stdout
        model, conversion = build_model(graph, options, out_dir, project)
        if trace:
            model.config.trace_output = True
            for node in model.get_layers():
                node.set_attr("trace", True)
        with _without_keras():
            model.write()
    # No absolute path in the project, and hls4ml's random library stamp (drawn while
    # writing) replaced by a hash of the graph and options: same inputs, same bytes.
    written_stamp, fixed_stamp = str(model.config.config["Stamp"]), stamp(graph, options)
    for name in ("hls4ml_config.yml", "build_lib.sh"):
        path = out_dir / name
        if path.is_file():
            text = path.read_text().replace(str(out_dir), ".")
            if name.endswith(".yml"):
                # YAML quotes a stamp that reads as a number (e.g. 1234e567) and not another:
                # rewrite the whole line, always quoted, so the bytes never depend on the draw.
                text = re.sub(r"^Stamp:.*$", f"Stamp: '{fixed_stamp}'", text, flags=re.M)
            path.write_text(text.replace(written_stamp, fixed_stamp))

    nodes = {node.name: node for node in model.get_layers()}
    for name, lo, hi in conversion.clips:
        clip_layer(out_dir, name, nodes[name], lo, hi)
    env = _env()
    rows, costs, compressed = [], [], set()
    for layer in graph.layers:
        row = {"name": layer.name, "kind": layer.kind, "types": {k: (layer.types()[k].hls() if k in layer.types() else None)
                                                         for k in ("weight_t", "bias_t", "accum_t", "result_t")},
               "weights": 0, "nonzero": 0, "storage": None, "in_project": layer.name in conversion.converted,
               "inputs": list(layer.inputs)}
        if layer.kind in WEIGHTED:
            cost = layer_cost(layer)
            if layer.kind != "dense" and options.strategy_of(layer.name) == "resource" and options.storage == "compressed":
                raise OptionError(f"layer {layer.name!r}: compressed weights are implemented for Dense layers only")
            storage = _storage(layer, cost, options)
            if storage == "compressed":
                compress_layer(out_dir, layer.name, nodes[layer.name], layer, env)
                compressed.add(layer.name)
            memory = {"compressed": cost.coo_memory_bits, "dense": cost.dense_memory_bits}.get(storage)
            row.update(cost.to_json(), storage=storage, weight_memory_bits=memory,
                       da_adder_cost=nodes[layer.name].attributes.get("da_kernel_cost"))
            costs.append(row)
        rows.append(row)
    _check_weight_files(out_dir, model, graph, compressed)

    context = dict(project=project, version=hwprune.__version__, model=graph.name, strategy=options.strategy,
                   reuse_factor=options.reuse_factor, part=options.part, target=options.target, tool=options.tool,
                   io_type=options.io_type, branched=not graph.is_chain,
                   clock_period_ns=options.clock_period_ns, hls4ml_version=hls4ml.__version__, layers=rows,
                   skipped=list(conversion.skipped), softmax_note=SOFTMAX_NOTE, vectors=int(x_int.shape[0]),
                   output_type=str(graph.output_t),
                   tool_command="vitis_hls" if options.tool == "Vitis" else "vivado_hls")
    (out_dir / "README.md").write_text(env.get_template("README.md.j2").render(**context))
    (out_dir / "build.sh").write_text(env.get_template("build.sh.j2").render(**context))
    tb = out_dir / "tb_data"
    tb.mkdir(exist_ok=True)
    tb_template = env.get_template("tb_data.dat.j2")
    (tb / "tb_input_features.dat").write_text(tb_template.render(rows=_tb_rows(x_int, graph.input_t)))
    (tb / "tb_output_predictions.dat").write_text(tb_template.render(rows=_tb_rows(y_int, graph.output_t)))

    memory = [r["weight_memory_bits"] for r in costs]
    summary = {
        "format": SUMMARY_FORMAT, "version": 1, "hwprune_version": hwprune.__version__,
        "hls4ml_version": hls4ml.__version__, "project": project, "model": graph.name,
        "options": options.to_json(), "softmax": SOFTMAX_NOTE if conversion.skipped else "",
        "skipped_layers": list(conversion.skipped), "layers": rows,
        "weights": sum(r["weights"] for r in costs), "nonzero_weights": sum(r["nonzero"] for r in costs),
        "multiplications": sum(r["nonzero"] for r in costs),
        "multiplications_dense": sum(r["weights"] for r in costs),
        "multiplier_weights": sum(r["multiplier_weights"] for r in costs),
        "da_adder_cost": (sum(r["da_adder_cost"] or 0 for r in costs) if "da" in options.strategies() else None),
        "weight_memory_bits": sum(memory) if all(m is not None for m in memory) else None,
        "dense_weight_memory_bits": sum(r["dense_memory_bits"] for r in costs),
        "files": _hashes(out_dir),
    }
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def read_summary(project: Path) -> dict:
    """The summary of a written project, after checking that no file changed since."""
    path = Path(project) / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise ModelError(f"{project}: no readable {SUMMARY} ({exc}); re-run hwprune export --backend hls4ml") from None
    if summary.get("format") != SUMMARY_FORMAT:
        raise ModelError(f"{path}: not an hwprune hls4ml project summary")
    changed = sorted(set(summary["files"].items()) ^ set(_hashes(Path(project)).items()))
    if changed:
        raise ModelError(f"{project}: {changed[0][0]} differs from what hwprune exported; re-run the export")
    return summary
