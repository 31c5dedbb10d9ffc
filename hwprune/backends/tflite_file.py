"""An int8-dialect graph -> a ``.tflite`` flatbuffer (the ``tflite`` package's generated
builders over ``flatbuffers``; no TensorFlow), so that TFLite Micro can run a model that
hwprune quantized itself (``export --quant tflite-int8``; the ``tflm`` engine).

The file holds what ``frontends.tflite`` reads: one subgraph, a chain of FULLY_CONNECTED,
CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MAX_POOL_2D, RESHAPE and a final SOFTMAX, every
tensor with batch 1. Padding must be TFLite's SAME or VALID; the fused activation is the
one whose clamp (``activation_range``) equals the layer's ``act_min``/``act_max``. The
bytes depend on the graph only (no timestamps), as every export output must.
"""

from __future__ import annotations

import flatbuffers
import numpy as np

from hwprune.errors import ModelError
from hwprune.ir.graph import Graph
from hwprune.ir.int8_types import Int8Affine, activation_range

try:  # the generated schema classes; a default dependency
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator
    from tflite.BuiltinOptions import BuiltinOptions
    from tflite.TensorType import TensorType
except ImportError:  # pragma: no cover - reported when a file is to be written
    tflite = None

_ACTIVATION_CODES = {"none": 0, "relu": 1, "relu_n1_to_1": 2, "relu6": 3}
SAME, VALID = 0, 1  # tflite.Padding
SOFTMAX_OUTPUT = Int8Affine(1.0 / 256.0, -128)  # what TFLM's int8 SOFTMAX requires of its output


def _activation(layer, out_t: Int8Affine) -> int:
    for name, code in _ACTIVATION_CODES.items():
        if activation_range(name, out_t) == (layer.act_min, layer.act_max):
            return code
    raise ModelError(f"layer {layer.name!r}: clamp {layer.act_min}..{layer.act_max} is no TFLite fused activation")


def _padding_code(layer, in_shape, out_shape, window) -> int:
    """SAME or VALID, whichever gives the layer's padding (as the reader derives it)."""
    for code in (VALID, SAME):
        pads = []
        for n, o, k, s in zip(in_shape[:2], out_shape[:2], window, layer.stride):
            expect = (n + s - 1) // s if code == SAME else (n - k + s) // s
            total = max((o - 1) * s + k - n, 0) if expect == o else -1
            pads.append((total // 2, total // 2 + total % 2) if total >= 0 else None)
        if tuple(pads) == tuple(layer.padding):
            return code
    raise ModelError(f"layer {layer.name!r}: padding {layer.padding} with stride {layer.stride} is neither TFLite's "
                     "SAME nor VALID padding")


class _Writer:
    def __init__(self):
        self.b = flatbuffers.Builder(1024)
        self.buffers = [b""]  # buffer 0: the empty buffer of every non-constant tensor
        self.tensors = []  # (name, shape, type, buffer, (scales, zero points, axis) or None)
        self.opcodes: list[int] = []
        self.operators = []

    def tensor(self, name, shape, ttype, quant=None, data: bytes = None) -> int:
        buffer = 0
        if data is not None:
            self.buffers.append(data)
            buffer = len(self.buffers) - 1
        self.tensors.append((name, tuple(int(d) for d in shape), ttype, buffer, quant))
        return len(self.tensors) - 1

    def activation(self, name, shape, t: Int8Affine) -> int:
        return self.tensor(name, (1, *shape), TensorType.INT8, ([t.scale], [t.zero_point], 0))

    def operator(self, code: int, inputs, outputs, options_type: int, options) -> None:
        if code not in self.opcodes:
            self.opcodes.append(code)
        self.operators.append((self.opcodes.index(code), list(inputs), list(outputs), options_type, options))

    # -- flatbuffer serialization (children before parents, as the builder requires) -----------

    def _vector(self, start, values, prepend) -> int:
        start(self.b, len(values))
        for v in reversed(list(values)):
            prepend(v)
        return self.b.EndVector()

    def _ints(self, start, values) -> int:
        return self._vector(start, [int(v) for v in values], self.b.PrependInt32)

    def _bytes(self, data: bytes) -> int:
        self.b.StartVector(1, len(data), 16)  # 16-byte aligned: kernels read int32 biases in place
        self.b.head = self.b.head - len(data)
        self.b.Bytes[self.b.head:self.b.head + len(data)] = data
        return self.b.EndVector()

    def finish(self, graph_name: str, inputs, outputs) -> bytes:
        b = self.b
        buffer_offsets = []
        for data in self.buffers:
            vec = self._bytes(data) if data else None
            tflite.BufferStart(b)
            if vec is not None:
                tflite.BufferAddData(b, vec)
            buffer_offsets.append(tflite.BufferEnd(b))
        tensor_offsets = []
        for name, shape, ttype, buffer, quant in self.tensors:
            name_off = b.CreateString(name)
            shape_off = self._ints(tflite.TensorStartShapeVector, shape)
            quant_off = None
            if quant is not None:
                scales, zps, axis = quant
                scale_off = self._vector(tflite.QuantizationParametersStartScaleVector,
                                         [float(np.float32(s)) for s in scales], b.PrependFloat32)
                zp_off = self._vector(tflite.QuantizationParametersStartZeroPointVector, [int(z) for z in zps],
                                      b.PrependInt64)
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, scale_off)
                tflite.QuantizationParametersAddZeroPoint(b, zp_off)
                tflite.QuantizationParametersAddQuantizedDimension(b, int(axis))
                quant_off = tflite.QuantizationParametersEnd(b)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape_off)
            tflite.TensorAddType(b, ttype)
            tflite.TensorAddBuffer(b, buffer)
            tflite.TensorAddName(b, name_off)
            if quant_off is not None:
                tflite.TensorAddQuantization(b, quant_off)
            tensor_offsets.append(tflite.TensorEnd(b))
        op_offsets = []
        for opcode, op_inputs, op_outputs, options_type, options in self.operators:
            in_off = self._ints(tflite.OperatorStartInputsVector, op_inputs)
            out_off = self._ints(tflite.OperatorStartOutputsVector, op_outputs)
            options_off = options(b)
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, opcode)
            tflite.OperatorAddInputs(b, in_off)
            tflite.OperatorAddOutputs(b, out_off)
            tflite.OperatorAddBuiltinOptionsType(b, options_type)
            tflite.OperatorAddBuiltinOptions(b, options_off)
            op_offsets.append(tflite.OperatorEnd(b))
        tensors_vec = self._vector(tflite.SubGraphStartTensorsVector, tensor_offsets, b.PrependUOffsetTRelative)
        inputs_vec = self._ints(tflite.SubGraphStartInputsVector, inputs)
        outputs_vec = self._ints(tflite.SubGraphStartOutputsVector, outputs)
        ops_vec = self._vector(tflite.SubGraphStartOperatorsVector, op_offsets, b.PrependUOffsetTRelative)
        sg_name = b.CreateString(graph_name)
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors_vec)
        tflite.SubGraphAddInputs(b, inputs_vec)
        tflite.SubGraphAddOutputs(b, outputs_vec)
        tflite.SubGraphAddOperators(b, ops_vec)
        tflite.SubGraphAddName(b, sg_name)
        subgraph = tflite.SubGraphEnd(b)
        code_offsets = []
        for code in self.opcodes:
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, 1)
            code_offsets.append(tflite.OperatorCodeEnd(b))
        codes_vec = self._vector(tflite.ModelStartOperatorCodesVector, code_offsets, b.PrependUOffsetTRelative)
        subgraphs_vec = self._vector(tflite.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
        buffers_vec = self._vector(tflite.ModelStartBuffersVector, buffer_offsets, b.PrependUOffsetTRelative)
        description = b.CreateString("hwprune")
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, codes_vec)
        tflite.ModelAddSubgraphs(b, subgraphs_vec)
        tflite.ModelAddDescription(b, description)
        tflite.ModelAddBuffers(b, buffers_vec)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _options(start, end, **fields):
    """A builder callback writing one options table (``fields``: its Add functions' suffixes)."""
    prefix = start.__name__[: -len("Start")]

    def build(b):
        start(b)
        for key, value in fields.items():
            getattr(tflite, f"{prefix}Add{key}")(b, value)
        return end(b)
    return build


def _weights(w: _Writer, layer, name: str, in_t: Int8Affine, weight: np.ndarray, axis: int) -> tuple[int, int]:
    scales = np.asarray(layer.weight_scale, dtype=np.float32)
    wt = w.tensor(f"{name}/weight", weight.shape, TensorType.INT8, (scales, np.zeros(len(scales), np.int64), axis),
                  np.ascontiguousarray(weight, dtype="<i1").tobytes())
    bias_scales = np.float32(in_t.scale) * scales
    bt = w.tensor(f"{name}/bias", (len(scales),), TensorType.INT32,
                  (bias_scales, np.zeros(len(scales), np.int64), 0),
                  np.ascontiguousarray(layer.bias, dtype="<i4").tobytes())
    return wt, bt


def write_tflite(graph: Graph) -> bytes:
    """The ``.tflite`` bytes of the int8-dialect chain ``graph``."""
    if tflite is None:
        raise ModelError("writing a .tflite file needs the 'tflite' package (pip install tflite)")
    graph.require_chain("the .tflite writer")
    w = _Writer()
    t, shape = graph.input_t, graph.input_shape
    current = w.activation(graph.input.name, shape, t)
    first_input = current
    for layer in graph.layers:
        out_shape = graph.shape_of(layer.name)
        kind = layer.kind
        if kind == "softmax":
            if layer.name != graph.layers[-1].name:
                raise ModelError(f"layer {layer.name!r}: SOFTMAX only as the last layer")
            out = w.activation(layer.name, shape, SOFTMAX_OUTPUT)
            w.operator(BuiltinOperator.SOFTMAX, [current], [out], BuiltinOptions.SoftmaxOptions,
                       _options(tflite.SoftmaxOptionsStart, tflite.SoftmaxOptionsEnd, Beta=1.0))
            current = out
            continue
        out_t = layer.result_t if getattr(layer, "result_t", None) is not None and layer.computes else t
        out = w.activation(layer.name, out_shape, out_t)
        if kind == "reshape":
            new_shape = [1, *out_shape]
            shape_t = w.tensor(f"{layer.name}/shape", (len(new_shape),), TensorType.INT32, None,
                               np.asarray(new_shape, dtype="<i4").tobytes())
            w.operator(BuiltinOperator.RESHAPE, [current, shape_t], [out], BuiltinOptions.ReshapeOptions,
                       lambda b, s=new_shape: _reshape_options(w, b, s))
        elif kind == "int8_dense":
            wt, bt = _weights(w, layer, layer.name, t, layer.weight, 0)
            w.operator(BuiltinOperator.FULLY_CONNECTED, [current, wt, bt], [out], BuiltinOptions.FullyConnectedOptions,
                       _options(tflite.FullyConnectedOptionsStart, tflite.FullyConnectedOptionsEnd,
                                FusedActivationFunction=_activation(layer, out_t)))
        elif kind == "int8_conv2d":
            common = dict(Padding=_padding_code(layer, shape, out_shape, layer.kernel_size),
                          StrideW=layer.stride[1], StrideH=layer.stride[0],
                          FusedActivationFunction=_activation(layer, out_t), DilationWFactor=1, DilationHFactor=1)
            if layer.depthwise:  # TFLite keeps depthwise filters as (1, kh, kw, out)
                weight = np.moveaxis(layer.weight[..., 0], 0, -1)[None]
                wt, bt = _weights(w, layer, layer.name, t, weight, 3)
                w.operator(BuiltinOperator.DEPTHWISE_CONV_2D, [current, wt, bt], [out],
                           BuiltinOptions.DepthwiseConv2DOptions,
                           _options(tflite.DepthwiseConv2DOptionsStart, tflite.DepthwiseConv2DOptionsEnd,
                                    DepthMultiplier=layer.out_channels // shape[-1], **common))
            else:
                wt, bt = _weights(w, layer, layer.name, t, layer.weight, 0)
                w.operator(BuiltinOperator.CONV_2D, [current, wt, bt], [out], BuiltinOptions.Conv2DOptions,
                           _options(tflite.Conv2DOptionsStart, tflite.Conv2DOptionsEnd, **common))
        elif kind in ("int8_avgpool2d", "int8_maxpool2d"):
            code = BuiltinOperator.AVERAGE_POOL_2D if kind == "int8_avgpool2d" else BuiltinOperator.MAX_POOL_2D
            w.operator(code, [current], [out], BuiltinOptions.Pool2DOptions,
                       _options(tflite.Pool2DOptionsStart, tflite.Pool2DOptionsEnd,
                                Padding=_padding_code(layer, shape, out_shape, layer.pool_size),
                                StrideW=layer.stride[1], StrideH=layer.stride[0], FilterWidth=layer.pool_size[1],
                                FilterHeight=layer.pool_size[0], FusedActivationFunction=_activation(layer, out_t)))
        else:
            raise ModelError(f"layer {layer.name!r}: the .tflite writer has no operator for {kind!r}")
        current, t, shape = out, out_t, out_shape
    return w.finish(graph.name, [first_input], [current])


def _reshape_options(w: _Writer, b, new_shape) -> int:
    vec = w._ints(tflite.ReshapeOptionsStartNewShapeVector, new_shape)
    tflite.ReshapeOptionsStart(b)
    tflite.ReshapeOptionsAddNewShape(b, vec)
    return tflite.ReshapeOptionsEnd(b)
