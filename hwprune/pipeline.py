"""The export pipeline: model -> (prune) -> quantize -> C + vectors + report, in one folder.

An export folder is self-contained::

    DIR/graph.json, DIR/weights.npz   the quantized IR (ir.io format)
    DIR/vectors.npz                   test vectors: x (float, the source model's layout), x_int
                                      (integers, channels-last as the C reads them), y_int
    DIR/export.json                   how the folder was made (options, formats, versions)
    DIR/c/                            model.h, model.c, ... : the firmware sources
    DIR/report.json, DIR/report.md    figures (hwprune report renders them again)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from hwprune import __version__, reference
from hwprune.errors import DataError, ModelError, OptionError
from hwprune.ir.graph import Graph, check_c_name
from hwprune.ir.io import GRAPH_FILE, load_graph, save_graph
from hwprune.outputs import output_dir
from hwprune.quant.calibrate import QuantConfig, calibrate

VECTORS_FILE = "vectors.npz"
EXPORT_FILE = "export.json"
C_DIR = "c"
HLS4ML_DIR = "hls4ml"
RANDOM_VECTORS = 256
MAX_VECTORS = 2000


@dataclass(frozen=True)
class ExportOptions:
    weight_bits: int = 8
    activation_bits: int = 8
    sparsity: Optional[float] = None
    format: str = "auto"
    target: str = "stm32l4r5"
    remove_dead_neurons: bool = True
    seed: int = 0
    name: Optional[str] = None  # the C prefix; None keeps the graph's name (from the file name)

    def __post_init__(self) -> None:
        if self.name is not None:
            check_c_name(self.name)
        if self.sparsity is not None and not (0.0 <= self.sparsity < 1.0):
            raise OptionError(f"--sparsity must be in [0, 1), got {self.sparsity}")
        if self.format not in ("auto", "dense", "csr"):
            raise OptionError(f"--format must be auto, dense or csr, got {self.format!r}")
        QuantConfig(self.weight_bits, self.activation_bits)  # checks the bit widths


def load_model(path, input_shape: Optional[tuple[int, ...]] = None, weights=None) -> Graph:
    """A float or quantized graph from a pickled torch module (.pt) or an hwprune graph folder.

    ``input_shape`` (one example's shape) is used for a torch model that does not start
    with a Linear layer; the export command takes it from the calibration inputs.
    ``weights``: the HDF5 weights of a Keras 2 architecture JSON file.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / GRAPH_FILE).is_file():
            raise ModelError(f"{path}: a folder without {GRAPH_FILE}; expected an hwprune graph or export folder")
        return load_graph(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or folder")
    if path.suffix in (".json", ".keras") or weights is not None:
        from hwprune.frontends.keras import load_keras

        return load_keras(path, weights)
    if path.suffix in (".pt", ".pth"):
        from hwprune.frontends.torch import from_torch, load_torch_model

        name = "".join(c if c.isalnum() else "_" for c in path.stem) or "model"
        if not (name[0].isalpha() or name[0] == "_"):
            name = f"m_{name}"
        return from_torch(load_torch_model(path), name=name, fallback_input_shape=input_shape)
    raise ModelError(f"{path}: unknown model format {path.suffix!r}; give a torch module (.pt) or a graph folder")


def load_array(path, what: str) -> np.ndarray:
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{what} {path}: no such file") from None
    except (ValueError, OSError) as exc:
        raise DataError(f"{what} {path}: not a readable .npy array ({exc})") from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        raise DataError(f"{what} {path}: give a single .npy array, not an .npz archive")
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{what} {path}: expected numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise DataError(f"{what} {path}: non-finite value at index {idx}")
    return arr.astype(np.float64)


def prune_graph(graph: Graph, sparsity: float) -> Graph:
    """One-shot layer-wise magnitude pruning of a float graph (the quick estimate of export)."""
    if graph.is_quantized:
        raise OptionError("--sparsity applies to float models; this graph is quantized already (prune before quantizing)")
    from hwprune.frontends.torch import from_torch, to_torch
    from hwprune.prune.criteria import compute_masks
    from hwprune.prune.masks import apply_masks, strip_masks

    module = to_torch(graph)
    apply_masks(module, compute_masks(module, sparsity, method="magnitude", scope="layer"))
    return from_torch(strip_masks(module), graph.source_input_shape, graph.name)


def remove_dead_neurons(graph: Graph) -> tuple[Graph, dict[str, int]]:
    """Drop Dense units and conv filters that read nothing (all-zero weights) or that
    nothing reads.

    A dead unit still outputs a constant, ``relu(bias)``; it is folded into the next
    layer's bias first, so the float function does not change
    (``prune.structured.remove_pruned_neurons``). Returns the smaller graph and the
    number of units removed per layer.
    """
    if graph.is_quantized:
        return graph, {}
    if any(getattr(layer, "depthwise", False) for layer in graph.layers):
        return graph, {}  # a depthwise conv ties its filters to its input channels: kept whole
    if len(graph.input_shape) > 1 and graph.input_layout == "channels_last":
        return graph, {}  # a channels-last model (Keras) has no torch twin to prune through
    from hwprune.frontends.torch import from_torch, to_torch
    from hwprune.prune.structured import remove_pruned_neurons

    smaller = from_torch(remove_pruned_neurons(to_torch(graph)), graph.source_input_shape, graph.name)
    removed = {
        a.name: a.out_channels - b.out_channels
        for a, b in zip(graph.weighted_layers(), smaller.weighted_layers())
        if a.out_channels != b.out_channels
    }
    return (smaller, removed) if removed else (graph, {})


def random_vectors(graph: Graph, count: int, seed: int) -> np.ndarray:
    """Inputs spread over the whole input type, saturating ends included (source layout)."""
    rng = np.random.default_rng(seed)
    t = graph.input_t
    q = rng.integers(t.min_int, t.max_int, size=(count, *graph.source_input_shape), endpoint=True)
    return np.ldexp(q.astype(np.float64), -t.frac_bits)


def quantize_graph(graph: Graph, calibration: Optional[np.ndarray], options: ExportOptions) -> Graph:
    if graph.is_quantized:
        return graph
    if calibration is None:
        raise DataError("a float model needs calibration inputs to choose its fixed-point types: pass --calibration X.npy")
    return calibrate(graph, calibration,
                     QuantConfig(options.weight_bits, options.activation_bits))


def write_export(graph: Graph, out, vectors: np.ndarray, options: ExportOptions, force: bool = False,
                 source: str = "", report_extra: Optional[dict] = None, removed_neurons: Optional[dict] = None,
                 hls=None) -> Path:
    """Write a complete export folder for a quantized graph (atomically); with ``hls``
    (``backends.hls4ml.HlsOptions``) an hls4ml project too, in ``DIR/hls4ml/``."""
    from hwprune.backends.c import export_c
    from hwprune.report import write_report

    if not graph.is_quantized:
        raise ModelError("write_export needs a quantized graph")
    if options.name:
        graph = graph.replace(name=options.name)
    graph.from_source(vectors, "test vectors")  # checks the shape (the source model's layout)
    vectors = np.asarray(vectors)[:MAX_VECTORS]
    x_int = reference.quantize_input(graph, vectors)
    y_int = reference.run(graph, x_int)
    out = Path(out)
    with output_dir(out, force) as tmp:
        save_graph(graph, tmp)
        np.savez(tmp / VECTORS_FILE, x=vectors, x_int=x_int, y_int=y_int)
        c_export = export_c(graph, tmp / C_DIR, options.format)
        if hls is not None:
            from hwprune.backends.hls4ml import export_hls4ml

            export_hls4ml(graph, tmp / HLS4ML_DIR, hls, x_int, y_int)
        meta = {
            "hwprune_version": __version__,
            "source": source,
            "model": graph.name,
            "weight_bits": options.weight_bits,
            "activation_bits": options.activation_bits,
            "sparsity_requested": options.sparsity,
            "format_policy": options.format,
            "removed_neurons": removed_neurons or {},
            "target": options.target,
            "formats": {s.name: s.format for s in c_export.layers},
        }
        if hls is not None:
            meta["hls4ml"] = hls.to_json()
        (tmp / EXPORT_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        write_report(tmp, extra=report_extra)
    return out


def export_model(model, out, calibration=None, options: ExportOptions = ExportOptions(), force: bool = False,
                 source: str = "", hls=None) -> Path:
    """The whole ``hwprune export``: read, prune (optional), quantize, lower, verify, report.

    ``model``: a Graph, a torch ``.pt`` file or a graph / export folder (whose stored test
    vectors are reused when no calibration inputs are given). ``source`` names the origin
    in the report when ``model`` is a Graph read elsewhere.
    """
    if not isinstance(model, Graph):
        source = source or str(model)
    graph = model if isinstance(model, Graph) else load_model(model)
    if calibration is not None:
        calibration = np.asarray(calibration, dtype=np.float64)
        graph.from_source(calibration, "calibration inputs")  # the source model's layout
    if options.sparsity:
        graph = prune_graph(graph, options.sparsity)
    removed: dict[str, int] = {}
    if options.remove_dead_neurons:
        graph, removed = remove_dead_neurons(graph)
    quantized = quantize_graph(graph, calibration, options)
    vectors = calibration
    stored = Path(source) / VECTORS_FILE if source else None
    if vectors is None and stored is not None and stored.is_file():
        with np.load(stored) as arrays:  # re-exporting an export folder
            vectors = arrays["x"]
    if vectors is None:
        vectors = random_vectors(quantized, RANDOM_VECTORS, options.seed)
    return write_export(quantized, out, vectors, options, force, source=source, removed_neurons=removed, hls=hls)
