"""TFLite int8 models (``.tflite``) -> an int8 ``ir.Graph``, without TensorFlow.

The flatbuffer is read with the generated schema classes of the ``tflite`` package (over
``flatbuffers``). Supported: one subgraph with one input and one output, whose operators
are int8 FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MAX_POOL_2D, RESHAPE
and ADD (two tensors of one shape: residual connections), the model output optionally
written by a SOFTMAX (kept as the IR's marker: the graph's output is the softmax's int8
input). The graph follows the file's tensors: each operator reads the layers that wrote
its input tensors (or the graph input), so branches and joins carry over. Every tensor
has batch 1.

Everything TFLM's Prepare derives from the file (per-channel multipliers and shifts, the
fused activation's clamp, explicit padding) is computed here once, exactly as TFLM does,
and carried by the layers. Each layer records the tensor it produces
(``TfliteModel.tensors``), so the TFLM engine can compare every intermediate tensor.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from hwprune.errors import HwpruneError, ModelError, UnsupportedLayerError
from hwprune.ir.graph import INPUT, Graph, GraphInput
from hwprune.ir.int8 import Int8Add, Int8AvgPool2D, Int8Conv2D, Int8Dense, Int8MaxPool2D, int8_types
from hwprune.ir.layers import Reshape, Softmax
from hwprune.ir.int8_types import Int8Affine, activation_range, add_params, conv_multipliers

try:  # the generated schema classes; a default dependency
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator
    from tflite.TensorType import TensorType
except ImportError:  # pragma: no cover - reported when a .tflite file is given
    tflite = None

SUPPORTED = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "RESHAPE", "ADD",
             "SOFTMAX")
_ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6"}


@dataclass(frozen=True, eq=False)
class TfliteModel:
    graph: Graph
    tensors: dict[str, int]  # IR layer name -> index of the TFLite tensor holding its output
    input_tensor: int
    output_tensor: int  # the tensor equal to the graph's output (a final SOFTMAX's input)


def _names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_")}


class _Reader:
    def __init__(self, path: Path, data: bytes):
        self.path = path
        self.data = data
        self.model = tflite.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() != 1:
            raise ModelError(f"{path}: {self.model.SubgraphsLength()} subgraphs; only single-subgraph models are supported")
        self.sg = self.model.Subgraphs(0)
        self.op_names = _names(BuiltinOperator)
        self.type_names = _names(TensorType)

    def opname(self, op) -> str:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        return self.op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "unknown")

    def tensor(self, index: int):
        return self.sg.Tensors(int(index))

    def tensor_name(self, index: int) -> str:
        return self.tensor(index).Name().decode("utf-8", "replace")

    def shape(self, index: int) -> tuple[int, ...]:
        t = self.tensor(index)
        return tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()

    def quant(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        q = self.tensor(index).Quantization()
        if q is None or q.ScaleLength() == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64), 0
        return (q.ScaleAsNumpy().astype(np.float32), q.ZeroPointAsNumpy().astype(np.int64),
                int(q.QuantizedDimension()))

    def array(self, index: int, dtype) -> np.ndarray:
        t = self.tensor(index)
        buf = self.model.Buffers(t.Buffer())
        shape = self.shape(index)
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if buf.Offset() > 1:  # a model over 2 GB keeps its buffers after the flatbuffer
            raw = self.data[buf.Offset(): buf.Offset() + buf.Size()]
        else:
            raw = buf.DataAsNumpy().tobytes() if buf.DataLength() else b""
        if len(raw) != size:
            raise ModelError(f"{self.path}: constant tensor {self.tensor_name(index)!r} holds {len(raw)} bytes, its "
                             f"shape {shape} needs {size} (truncated or corrupt file)")
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).astype(np.int64)


def read_tflite(path, name: str = "model") -> TfliteModel:
    """The int8 graph of a ``.tflite`` file; ModelError (one line) on anything unsupported."""
    path = Path(path)
    if tflite is None:
        raise ModelError(f"{path}: reading .tflite files needs the 'tflite' package (pip install tflite)")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        return _convert(_Reader(path, data), name)
    except HwpruneError:
        raise
    except (IndexError, struct.error, ValueError, TypeError, UnicodeDecodeError, AttributeError) as exc:
        raise ModelError(f"{path}: truncated or corrupt TFLite flatbuffer ({type(exc).__name__}: {exc})") from None


def load_tflite(path, name: str = "model") -> Graph:
    return read_tflite(path, name).graph


def _activation_type(r: _Reader, tensor: int, where: str) -> Int8Affine:
    t = r.tensor(tensor)
    kind = r.type_names.get(t.Type(), str(t.Type()))
    if kind != "INT8":
        raise ModelError(f"{r.path}: {where} has {kind} tensor {r.tensor_name(tensor)!r}: only int8 models are "
                         "supported (convert with full-integer quantization)")
    shape = r.shape(tensor)
    if not shape or shape[0] != 1:
        raise ModelError(f"{r.path}: {where}: tensor {r.tensor_name(tensor)!r} has shape {shape}; batch 1 is required")
    scale, zp, _ = r.quant(tensor)
    if scale.size != 1 or zp.size != 1:
        raise ModelError(f"{r.path}: {where}: tensor {r.tensor_name(tensor)!r} needs one scale and zero point, got "
                         f"{scale.size}")
    if not float(scale[0]) > 0 or not np.isfinite(scale[0]):
        raise ModelError(f"{r.path}: {where}: tensor {r.tensor_name(tensor)!r} has scale {float(scale[0])}; "
                         "scales must be positive")
    return Int8Affine(float(scale[0]), int(zp[0]))


def _weights(r: _Reader, op, where: str, channels_axis: int):
    """(int8 weights, per-output scales, int32 bias) of a weighted operator."""
    inputs = op.InputsAsNumpy()
    w_index = int(inputs[1])
    if r.type_names.get(r.tensor(w_index).Type()) != "INT8":
        raise ModelError(f"{r.path}: {where} has {r.type_names.get(r.tensor(w_index).Type())} weights; int8 required")
    w = r.array(w_index, np.int8)
    scale, zp, _ = r.quant(w_index)
    out = w.shape[channels_axis]
    if scale.size not in (1, out) or np.any(zp != 0):
        raise ModelError(f"{r.path}: {where}: weights need symmetric quantization (zero point 0) with 1 or {out} "
                         f"scales, got {scale.size} scales, zero points {sorted(set(zp.tolist()))[:4]}")
    if np.any(~(scale > 0)):
        raise ModelError(f"{r.path}: {where}: weight tensor {r.tensor_name(w_index)!r} has a scale "
                         f"{float(scale[~(scale > 0)][0])}; scales must be positive")
    bias = np.zeros(out, dtype=np.int64)
    if len(inputs) > 2 and int(inputs[2]) >= 0:
        if r.type_names.get(r.tensor(int(inputs[2])).Type()) != "INT32":
            raise ModelError(f"{r.path}: {where}: the bias must be int32")
        bias = r.array(int(inputs[2]), np.int32).reshape(-1)
        if bias.shape != (out,):
            raise ModelError(f"{r.path}: {where}: bias of shape {bias.shape} for {out} outputs")
    return w, scale, bias, scale.size > 1


def _padding(r: _Reader, opts, in_shape, out_shape, window, where: str):
    """TFLM's ``ComputePaddingHeightWidth``: (before, after) per axis from the tensors' sizes."""
    pads = []
    for n, o, k, s in zip(in_shape, out_shape, window, (opts.StrideH(), opts.StrideW())):
        expect = (n + s - 1) // s if opts.Padding() == 0 else (n - k + s) // s
        if expect != o:
            raise ModelError(f"{r.path}: {where}: output size {o} does not follow from input {n}, window {k}, stride {s}")
        total = max((o - 1) * s + k - n, 0)
        pads.append((total // 2, total // 2 + total % 2))
    return tuple(pads), (int(opts.StrideH()), int(opts.StrideW()))


def _options(op, cls):
    table = op.BuiltinOptions()
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _convert(r: _Reader, name: str) -> TfliteModel:
    sg = r.sg
    if sg.InputsLength() != 1 or sg.OutputsLength() != 1:
        raise ModelError(f"{r.path}: {sg.InputsLength()} inputs and {sg.OutputsLength()} outputs; one of each is supported")
    input_tensor, model_output = int(sg.Inputs(0)), int(sg.Outputs(0))
    if sg.OperatorsLength() == 0:
        raise ModelError(f"{r.path}: the model has no operators")
    first = f"operator 0 ({r.opname(sg.Operators(0))}) input"  # errors name the operator that reads the input
    input_t = _activation_type(r, input_tensor, first)
    # tensor index -> (IR name of the layer or graph input holding it, its type, its shape without batch)
    produced = {input_tensor: (INPUT, input_t, r.shape(input_tensor)[1:])}
    layers, tensors = [], {}
    output_name, output_tensor = None, None
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        kind = r.opname(op)
        where = f"operator {i} ({kind})"
        if kind not in SUPPORTED:
            raise UnsupportedLayerError(f"{r.path}: {where} is not supported; supported operators are "
                                        f"{', '.join(SUPPORTED)}")
        inputs, outputs = op.InputsAsNumpy(), op.OutputsAsNumpy()
        if len(outputs) != 1:
            raise UnsupportedLayerError(f"{r.path}: {where} has {len(outputs)} outputs; one is supported")
        sources = [int(t) for t in inputs[: 2 if kind == "ADD" else 1]]
        for t in sources:
            if t not in produced:
                raise UnsupportedLayerError(f"{r.path}: {where} reads tensor {r.tensor_name(t)!r}, which is neither the "
                                            "model input nor an earlier operator's output (constant operands are "
                                            "not supported)")
        src, in_t, shape = produced[sources[0]]
        out_index = int(outputs[0])
        if kind == "SOFTMAX":  # the IR's marker: its output is its input, the logits
            _activation_type(r, out_index, f"{where} output")
            if out_index != model_output:
                raise UnsupportedLayerError(f"{r.path}: {where}: SOFTMAX is supported only as the model output")
            layers.append(Softmax(f"softmax_{i}", inputs=(src,)))
            tensors[layers[-1].name] = sources[0]
            output_name, output_tensor = layers[-1].name, sources[0]
            produced[out_index] = (layers[-1].name, in_t, shape)
            continue
        out_t = _activation_type(r, out_index, f"{where} output")
        out_shape = r.shape(out_index)[1:]
        lname = f"{kind.lower()}_{i}"
        if kind == "ADD":
            layer = _add(r, op, lname, where, [produced[t] for t in sources], out_t, out_shape)
        elif kind == "RESHAPE":
            if out_t != in_t:
                raise ModelError(f"{r.path}: {where}: input and output quantization differ")
            layer = Reshape(lname, target_shape=out_shape, inputs=(src,))
        elif kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            opts = _options(op, tflite.Pool2DOptions)
            if out_t != in_t:
                raise ModelError(f"{r.path}: {where}: input and output quantization differ")
            window = (int(opts.FilterHeight()), int(opts.FilterWidth()))
            padding, stride = _padding(r, opts, shape[:2], out_shape[:2], window, where)
            lo, hi = activation_range(_act(r, opts, where), out_t)
            cls = Int8AvgPool2D if kind == "AVERAGE_POOL_2D" else Int8MaxPool2D
            layer = cls(lname, pool_size=window, stride=stride, padding=padding, accum_t=int8_types(out_t)["accum_t"],
                        result_t=out_t, act_min=lo, act_max=hi, inputs=(src,))
        elif kind == "FULLY_CONNECTED":
            opts = _options(op, tflite.FullyConnectedOptions)
            w, scale, bias, _ = _weights(r, op, where, 0)
            if w.ndim != 2:
                raise ModelError(f"{r.path}: {where}: weights of shape {w.shape}; (outputs, inputs) expected")
            if int(np.prod(shape)) != w.shape[1]:
                raise ModelError(f"{r.path}: {where}: input of {int(np.prod(shape))} values for {w.shape[1]} weights")
            if shape != (w.shape[1],):  # FULLY_CONNECTED flattens its input
                layers.append(Reshape(f"flatten_{i}", target_shape=(w.shape[1],), inputs=(src,)))
                tensors[layers[-1].name] = sources[0]
                src = layers[-1].name
            mult, shift = conv_multipliers(in_t.scale, np.broadcast_to(scale, (w.shape[0],)), out_t.scale)
            lo, hi = activation_range(_act(r, opts, where), out_t)
            layer = Int8Dense(lname, weight=w, bias=bias, **int8_types(out_t),
                              weight_scale=np.broadcast_to(scale, (w.shape[0],)).astype(np.float64),
                              out_multiplier=mult, out_shift=shift, act_min=lo, act_max=hi, inputs=(src,))
            out_shape = (w.shape[0],)
        else:  # CONV_2D, DEPTHWISE_CONV_2D
            depthwise = kind == "DEPTHWISE_CONV_2D"
            opts = _options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
            if opts.DilationHFactor() != 1 or opts.DilationWFactor() != 1:
                raise UnsupportedLayerError(f"{r.path}: {where}: dilation {opts.DilationHFactor()}x"
                                            f"{opts.DilationWFactor()} is not supported (1 only)")
            w, scale, bias, _ = _weights(r, op, where, 3 if depthwise else 0)
            if depthwise:
                w = np.moveaxis(w[0], 2, 0)[..., None]  # (1, kh, kw, out) -> (out, kh, kw, 1)
            padding, stride = _padding(r, opts, shape[:2], out_shape[:2], w.shape[1:3], where)
            mult, shift = conv_multipliers(in_t.scale, np.broadcast_to(scale, (w.shape[0],)), out_t.scale)
            lo, hi = activation_range(_act(r, opts, where), out_t)
            layer = Int8Conv2D(lname, weight=w, bias=bias, stride=stride, padding=padding, depthwise=depthwise,
                               **int8_types(out_t), weight_scale=np.broadcast_to(scale, (w.shape[0],)).astype(np.float64),
                               out_multiplier=mult, out_shift=shift, act_min=lo, act_max=hi, inputs=(src,))
        layers.append(layer)
        tensors[lname] = out_index
        produced[out_index] = (lname, out_t, tuple(out_shape))
        if out_index == model_output:
            output_name, output_tensor = lname, out_index
    if output_name is None:
        raise ModelError(f"{r.path}: no operator writes the model output {r.tensor_name(model_output)!r}")
    graph = Graph(name, (GraphInput(INPUT, r.shape(input_tensor)[1:], input_t),), tuple(layers), (output_name,))
    for layer, ir_shape in ((layer, graph.shape_of(layer.name)) for layer in graph.layers):  # the IR's geometry must match the file's shapes
        want = r.shape(tensors[layer.name])[1:]
        if layer.kind not in ("reshape", "softmax") and int(np.prod(want)) != int(np.prod(ir_shape)):
            raise ModelError(f"{r.path}: layer {layer.name}: shape {ir_shape} differs from the file's {want}")
    return TfliteModel(graph, tensors, input_tensor, output_tensor)


def _add(r: _Reader, op, name: str, where: str, operands, out_t: Int8Affine, out_shape) -> Int8Add:
    """ADD of two int8 tensors of one shape, with the parameters TFLM's Prepare computes."""
    (a, a_t, a_shape), (b, b_t, b_shape) = operands
    if a_shape != b_shape or tuple(out_shape) != a_shape:
        raise UnsupportedLayerError(f"{r.path}: {where}: operands of shapes {a_shape} and {b_shape} into {out_shape}; "
                                    "only ADD of two tensors of one shape is supported (no broadcasting)")
    opts = _options(op, tflite.AddOptions)
    params = add_params(a_t, b_t, out_t, _act(r, opts, where))
    return Int8Add.from_params(name, params, out_t, inputs=(a, b))


def _act(r: _Reader, opts, where: str) -> str:
    code = int(opts.FusedActivationFunction())
    if code not in _ACTIVATIONS:
        raise UnsupportedLayerError(f"{r.path}: {where}: fused activation {code} is not supported")
    return _ACTIVATIONS[code]

