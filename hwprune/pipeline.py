"""The export pipeline: model -> (prune) -> quantize -> C + vectors + report, in one folder.

An export folder is self-contained::

    DIR/graph.json, DIR/weights.npz   the quantized IR (ir.io format), stored once: every
                                      backend folder points at it (c/export.json "graph")
    DIR/vectors.npz                   test vectors: x (float, the source model's layout), x_int
                                      (integers, channels-last as the C reads them), y_int
    DIR/export.json                   how the folder was made (options, formats, versions, fidelity)
    DIR/c/                            model.h, model.c, ... : the firmware sources
    DIR/report.json, DIR/report.md    figures (hwprune report renders them again)
    DIR/hwprune-manifest.json         written last: the hash of every file above
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

import hwprune.backends.builtin  # noqa: F401 (registers the C, hls4ml and RTL backends)
from hwprune import __version__, fidelity, manifest, reference
from hwprune.backends.c.options import DEFAULT_BITS, COptions
from hwprune.backends.registry import BackendContext, ordered
from hwprune.errors import DataError, HwpruneError, ModelError, OptionError
from hwprune.exportdir import DEAD_CHANNELS_KEY, EXPORT_FILE, VECTORS_FILE, Export, read_vectors
from hwprune.frontends.keras import load_keras
from hwprune.frontends.onnx import load_onnx
from hwprune.frontends.tflite import load_tflite
from hwprune.harness.build import find_cc
from hwprune.harness.format_speed import measured_speeds
from hwprune.ir.graph import Graph, check_c_name
from hwprune.ir.int8 import is_int8_graph
from hwprune.ir.io import GRAPH_FILE, load_graph, save_graph
from hwprune.outputs import output_dir
from hwprune.pipeline_int8 import check_options as check_int8_options
from hwprune.pipeline_int8 import export_converted, export_int8
from hwprune.prune.dead_channels import check_same_outputs, remove_dead_channels
from hwprune.prune.graph import prune_graph, remove_dead_neurons  # noqa: F401 (part of this module's API)
from hwprune.quant.calibrate import QuantConfig, calibrate
from hwprune.quant.exact import calibrate_input
from hwprune.quant.losses import losses
from hwprune.quant.precision import PrecisionSpec
from hwprune.quant.tflite_int8 import INT8_QUANT, QUANT_SCHEMES
from hwprune.report import write_report
from hwprune.targets import DEFAULT_TARGET, check_fit, get_target

RANDOM_VECTORS = 256
MAX_VECTORS = 2000


@dataclass(frozen=True)
class ExportOptions:
    """What every export takes, whichever backends write it; a backend's own options are
    its options class (``backends.registry``: ``COptions``, ``HlsOptions``, ``RtlOptions``)."""
    # None: the widest default of the backends asked for (8 for C, 16 with hls4ml)
    weight_bits: Optional[int] = None
    activation_bits: Optional[int] = None
    sparsity: Optional[float] = None
    # None: compare sizes with stm32l4r5 without emulating it; a name or TOML path: the
    # chip the firmware is built, emulated and measured for (when the toolchain is there).
    target: Optional[str] = None
    # units without weights or readers go: from the float model (prune.graph) and, bit-exactly,
    # from the quantized graph in both dialects (prune.dead_channels); False keeps every channel
    remove_dead_neurons: bool = True
    seed: int = 0
    require_fit: bool = True  # a model too large for the chosen target is an error (False: reported only)
    name: Optional[str] = None  # the C prefix; None keeps the graph's name (from the file name)
    task: Optional[str] = None  # fidelity's terms: classification, regression; None: from the final Softmax
    # types (and hls4ml settings) the user gave: --precision or --config (quant.precision)
    spec: Optional[PrecisionSpec] = None
    # the numeric scheme of a float model: power-of-two ap_fixed types, or TFLite's int8
    # (scale and zero point; quant.tflite_int8); a .tflite model is int8 whatever it says
    quant: str = "ap_fixed"

    def __post_init__(self) -> None:
        if self.quant not in QUANT_SCHEMES:
            raise OptionError(f"--quant must be one of {', '.join(QUANT_SCHEMES)}, got {self.quant!r}")
        if self.name is not None:
            check_c_name(self.name)
        if self.task is not None and self.task not in fidelity.TASKS:
            raise OptionError(f"--task must be one of {', '.join(fidelity.TASKS)}, got {self.task!r}")
        if self.sparsity is not None and not (0.0 <= self.sparsity < 1.0):
            raise OptionError(f"--sparsity must be in [0, 1), got {self.sparsity}")
        QuantConfig(*(DEFAULT_BITS if bits is None else bits  # checks the widths (0 too)
                      for bits in (self.weight_bits, self.activation_bits)))

    def with_default_bits(self, backends: Sequence = ()) -> "ExportOptions":
        """These options with every width not given set to the widest default of ``backends``."""
        default = max((backend.default_bits for backend, _ in ordered(with_c(backends))), default=DEFAULT_BITS)
        return replace(self, weight_bits=self.weight_bits or default, activation_bits=self.activation_bits or default)


def _c_options(backends: Sequence) -> COptions:
    """The C backend's options among ``backends`` (its defaults when it is not there)."""
    return next((opts for opts in backends if isinstance(opts, COptions)), COptions())


def with_c(backends: Sequence) -> tuple:
    """The backends' options asked for, with the C backend's defaults when it is not among
    them: every export holds C, which the host engine runs and the report measures."""
    backends = tuple(backends)
    return backends if any(isinstance(b, COptions) for b in backends) else (COptions(), *backends)


def check_backends(graph: Graph, options: ExportOptions, backends: Sequence) -> None:
    """Every backend asked for checks the graph and the target before any work."""
    target = get_target(options.target) if options.target is not None else None
    for backend, opts in ordered(with_c(backends)):
        backend.check(graph, opts, target)
        if isinstance(opts, COptions) and opts.compile:
            find_cc()  # a missing compiler fails before anything is written


MODEL_SUFFIXES = (".pt", ".pth", ".pt2", ".onnx", ".keras", ".json", ".tflite")


def model_name(path: Path) -> str:
    name = "".join(c if c.isalnum() else "_" for c in path.stem) or "model"
    return name if (name[0].isalpha() or name[0] == "_") else f"m_{name}"


@contextlib.contextmanager
def _naming(*files):
    """Errors of a frontend that name a layer but not the file: prefixed with the file(s)."""
    try:
        yield
    except HwpruneError as exc:
        if any(str(exc).startswith(str(f)) for f in files):
            raise
        raise type(exc)(f"{' with '.join(map(str, files))}: {exc}") from None


def load_model(path, input_shape: Optional[tuple[int, ...]] = None, trust_model: bool = False,
               weights=None, outputs=None) -> Graph:
    """A float or quantized graph from a model file or an hwprune graph / export folder.

    Files: a pickled torch module (``.pt``/``.pth``, loaded without running code unless
    ``trust_model``), a torch.export program (``.pt2``), an ONNX model (``.onnx``), or a
    Keras model (``.keras``, or an architecture ``.json`` with its HDF5 ``weights``).
    ``input_shape`` (one example's shape) is used for a torch model that does not start
    with a Linear layer; the export command takes it from the calibration inputs.
    ``weights``: the HDF5 weights of a Keras 2 architecture JSON file.
    ``outputs``: tensor names an ONNX model is cut at instead of its own outputs.
    """
    path = Path(path)
    if outputs and path.suffix != ".onnx":
        raise OptionError(f"--output {outputs[0]}: cuts an ONNX model at a tensor; {path} is not an .onnx file")
    if path.is_dir():
        if (path / manifest.MANIFEST_FILE).is_file() or (path / manifest.PENDING_FILE).is_file():
            manifest.check(path)
        elif (path / VECTORS_FILE).exists() or (path / EXPORT_FILE).exists():
            manifest.check(path)  # an export folder without its manifest: incomplete
        if not (path / GRAPH_FILE).is_file():
            raise ModelError(f"{path}: a folder without {GRAPH_FILE}; expected an hwprune graph or export folder")
        return load_graph(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or folder")
    if path.suffix in (".json", ".keras", ".h5", ".hdf5") or weights is not None:
        with _naming(path, *([weights] if weights is not None else [])):
            return load_keras(path, weights)
    name = model_name(path)
    if path.suffix in (".pt", ".pth"):
        # the torch frontends import torch (seconds): loaded for a torch file only
        from hwprune.frontends.torch import from_torch, load_torch_model

        module = load_torch_model(path, trust_model)
        with _naming(path):
            return from_torch(module, name=name, fallback_input_shape=input_shape)
    if path.suffix == ".pt2":
        from hwprune.frontends.torch_export import load_exported_program

        return load_exported_program(path, name, trust_model=trust_model)
    if path.suffix == ".onnx":
        return load_onnx(path, name, outputs)
    if path.suffix == ".tflite":
        return load_tflite(path, name)
    raise ModelError(f"{path}: unknown model format {path.suffix!r}; give a torch module (.pt, .pth), a "
                     "torch.export program (.pt2), an ONNX model (.onnx), a Keras model (.keras, a whole-model "
                     ".h5, or .json with --weights), an int8 TFLite model (.tflite) or an hwprune graph folder")


def random_vectors(graph: Graph, count: int, seed: int) -> np.ndarray:
    """Inputs spread over the whole input type, saturating ends included (source layout)."""
    rng = np.random.default_rng(seed)
    t = graph.input_t
    q = rng.integers(t.min_int, t.max_int, size=(count, *graph.source_input_shape), endpoint=True)
    return np.ldexp(q.astype(np.float64), -t.frac_bits)


def narrowest_int(values: np.ndarray) -> np.ndarray:
    """The integers in the narrowest signed dtype that holds them (the stored vectors of a
    large model are otherwise mostly int64 padding)."""
    values = np.asarray(values)
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if values.size == 0 or (values.min() >= info.min and values.max() <= info.max):
            return values.astype(dtype)
    return values.astype(np.int64)


def quantize_graph(graph: Graph, calibration: Optional[np.ndarray], options: ExportOptions,
                   calibration_name: str = "calibration inputs") -> Graph:
    if graph.is_quantized:
        return graph
    if calibration is None:
        raise DataError("a float model needs calibration inputs to choose its fixed-point types: pass --calibration X.npy")
    quantized = calibrate(graph, calibration, QuantConfig(options.weight_bits, options.activation_bits), options.spec)
    fidelity.check_ranges(quantized, calibration, calibration_name)
    return quantized


def precision_report(graph: Graph, calibration, options: ExportOptions) -> Optional[dict]:
    """export.json's ``precision``: where the user's types came from and what they lose on
    the calibration data (``quant.losses``); None when calibration chose every type."""
    if options.spec is None or graph.is_quantized or calibration is None:
        return None
    return {"given": options.spec.source, "warnings": losses(graph, calibration, options.spec)}


def write_export(graph: Graph, out, vectors: np.ndarray, options: ExportOptions, force: bool = False,
                 source: str = "", report_extra: Optional[dict] = None, removed_neurons: Optional[dict] = None,
                 float_graph: Optional[Graph] = None, inputs: tuple = (), backends: Sequence = (),
                 precision: Optional[dict] = None) -> Export:
    """Write a complete export folder for a quantized graph (atomically, manifest last);
    the folder with its report and export.json.

    ``backends``: the options of each backend to write (``COptions``, ``HlsOptions``,
    ``RtlOptions``: ``backends.registry``); the C backend is always written, with its
    defaults when its options are not given. ``float_graph``: the float model ``graph`` was
    quantized from; the export then measures fidelity (``hwprune.fidelity``). ``inputs``:
    paths ``force`` must never replace. ``precision``: the user's types and their losses
    (``precision_report``), kept in export.json.
    """
    if not graph.is_quantized:
        raise ModelError("write_export needs a quantized graph")
    # The widths the graph was quantized with, when the caller does not say
    options = replace(options, weight_bits=options.weight_bits or max(
                          (layer.weight_t.width for layer in graph.weighted_layers()), default=None),
                      activation_bits=options.activation_bits or graph.input_t.width)
    backends = ordered(with_c(backends))
    check_backends(graph, options, [opts for _, opts in backends])
    c_options = next(opts for backend, opts in backends if isinstance(opts, COptions))
    if options.name:
        graph = graph.replace(name=options.name)
    graph.from_source(vectors, "test vectors")  # checks the shape (the source model's layout)
    vectors = np.asarray(vectors)[:MAX_VECTORS]
    x_int = reference.quantize_input(graph, vectors)
    y_int = reference.run(graph, x_int)  # the graph as quantized defines the outputs
    fid = None
    if float_graph is not None:
        zeroed = fidelity.zeroed_by_quantization(float_graph, graph)
        fid = fidelity.measure(fidelity.float_outputs(float_graph, vectors), y_int, graph, zeroed, options.task)
    dead = None
    if options.remove_dead_neurons:
        graph, dead = remove_dead_channels(graph)
        check_same_outputs(graph, x_int, y_int, source or graph.name)
    target = get_target(options.target or DEFAULT_TARGET)
    out = Path(out)
    with output_dir(out, force, inputs=(*inputs, source or None)) as tmp:
        save_graph(graph, tmp)
        np.savez(tmp / VECTORS_FILE, x=vectors, x_int=narrowest_int(x_int), y_int=narrowest_int(y_int))
        context = BackendContext(graph, x_int, y_int, target, options.target is not None, graph_dir=tmp,
                                 measured_cycles=measured_speeds(graph, target, x_int, c_options))
        written = {}
        for backend, opts in backends:
            written.update(backend.write(tmp, opts, context))
        meta = {
            "hwprune_version": __version__,
            "source": source,
            "model": graph.name,
            "weight_bits": options.weight_bits,
            "activation_bits": options.activation_bits,
            "sparsity_requested": options.sparsity,
            "removed_neurons": removed_neurons or {},
            **({DEAD_CHANNELS_KEY: dead.to_json()} if dead is not None else {}),
            "target": target.name,
            "target_given": options.target is not None,
            **({"target_spec": asdict(target)} if options.target and (options.target.endswith(".toml") or "/" in options.target) else {}),
            **written,
            "fidelity": fid,
            **({"precision": precision} if precision is not None else {}),
        }
        (tmp / EXPORT_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        report = write_report(tmp, extra=report_extra, cc=c_options.cc, check=False)
        if options.target is not None and options.require_fit:  # the default target only compares sizes
            check_fit(report, target)
    return Export(out, report, meta)


def export_model(model, out, calibration=None, options: ExportOptions = ExportOptions(), force: bool = False,
                 source: str = "", trust_model: bool = False, calibration_name: str = "calibration inputs",
                 backends: Sequence = ()) -> Export:
    """The whole ``hwprune export``: read, prune (optional), quantize, lower, verify, report.

    ``model``: a Graph, a model file (``load_model``; ``trust_model`` opens a pickle that
    would run code) or a graph / export folder (whose stored test vectors are reused when
    no calibration inputs are given). ``source`` names the origin in the report when
    ``model`` is a Graph read elsewhere. ``backends``: as ``write_export``'s.
    """
    options = options.with_default_bits(backends)
    if not isinstance(model, Graph):
        source = source or str(model)
    graph = model if isinstance(model, Graph) else load_model(model, trust_model=trust_model)
    if is_int8_graph(graph):  # TFLite's int8 dialect: exported as the file holds it (pipeline_int8)
        check_int8_options(options, backends)
        return export_int8(graph, source, out, options, force, calibration, c_options=_c_options(backends))
    if options.quant == INT8_QUANT:
        check_int8_options(options, backends, converted=graph)
    check_backends(graph, options, backends)  # a layer or a target a backend refuses fails before any work
    if calibration is not None:
        calibration = np.asarray(calibration, dtype=np.float64)
        graph.from_source(calibration, calibration_name)  # the source model's layout
        graph = calibrate_input(graph, calibration)  # a quantized model's undeclared input type
    if options.sparsity:
        graph = prune_graph(graph, options.sparsity)
    removed: dict[str, int] = {}
    if options.remove_dead_neurons:
        graph, removed = remove_dead_neurons(graph)
    if options.quant == INT8_QUANT:
        return export_converted(graph, source, out, options, force, calibration, removed,
                                c_options=_c_options(backends))
    vectors = calibration
    stored = Path(source) if source else None
    if vectors is None and stored is not None and (stored / VECTORS_FILE).exists():
        vectors = read_vectors(stored, graph)["x"]  # re-exporting an export folder
    quantized = quantize_graph(graph, calibration, options, calibration_name)
    if vectors is None:
        vectors = random_vectors(quantized, RANDOM_VECTORS, options.seed)
    return write_export(quantized, out, vectors, options, force, source=source, removed_neurons=removed,
                        float_graph=None if graph.is_quantized else graph, backends=backends,
                        precision=precision_report(graph, calibration, options))
