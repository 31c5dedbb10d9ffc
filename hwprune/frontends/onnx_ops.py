"""ONNX handlers of the dense, element-wise, merge and layout ops (spatial ops: ``onnx_spatial``).

Each handler turns a node into IR layers reading named tensors (``Context.emit``), or into
a new view of its input (``Value``, see ``onnx_values``): Identity, Dropout, a Transpose of
the layout, an Unsqueeze around a BatchNormalization. A bias Add or a BatchNormalization
changes the Dense or conv before it when nothing else reads that layer's output; a
BatchNormalization with nothing to fold into waits for the Gemm, MatMul or Conv after it.
"""

from __future__ import annotations

import numpy as np

from hwprune.errors import ShapeError
from hwprune.frontends.onnx_graph import label, op
from hwprune.frontends.onnx_values import Value
from hwprune.ir.graph import INPUT
from hwprune.ir.layers import Add, Clip, Concatenate, Dense, Flatten, Multiply, ReLU, Softmax, WeightedLayer


def flatten_permutation(shape: tuple[int, ...]) -> np.ndarray:
    """IR feature ``i`` of a flattened channels-last ``shape`` is feature ``perm[i]`` of the
    same tensor flattened channels-first (ONNX's order)."""
    channels_first = np.arange(int(np.prod(shape))).reshape(shape[-1], *shape[:-1])
    return np.moveaxis(channels_first, 0, -1).reshape(-1)


def fold_after(layer: WeightedLayer, scale: np.ndarray, shift: np.ndarray) -> WeightedLayer:
    """``scale * layer(x) + shift`` as one layer (per output channel)."""
    axes = (-1,) + (1,) * (layer.weight.ndim - 1)
    return layer.with_(weight=layer.weight * scale.reshape(axes), bias=layer.bias * scale + shift)


def _dense(node, ctx, value: Value, weight: np.ndarray, bias: np.ndarray) -> Value:
    """A Dense reading ``value`` with ONNX weight ``(out, in)``: its columns put in the IR's
    order, and a BatchNorm waiting before it folded in."""
    shape = ctx.ir_shape(value)
    if value.pad is not None or value.unsqueezed:
        ctx.require_plain(node, value.but(affine=None))
    if len(shape) != 1 or value.rank != 2:
        raise ctx.fail(node, f"it reads a tensor of shape (N, {', '.join(map(str, ctx.onnx_dims(value)))}); "
                             "a Gemm or MatMul reads (N, features): add a Flatten before it")
    if weight.shape[1] != shape[0] and value.ir == INPUT:
        raise ShapeError(f"{ctx.path}: the graph input is declared (N, {shape[0]}), but its first layer takes "
                         f"(N, {weight.shape[1]}) ({label(node, ctx.index)})")
    if weight.shape[1] != shape[0]:
        raise ctx.fail(node, f"its weight has {weight.shape[1]} inputs, the tensor it reads has {shape[0]} features")
    if value.perm is not None:
        weight = weight[:, value.perm]
    if value.affine is not None:  # Dense(scale * x + shift) = (W diag(scale)) x + (W shift + b)
        _, scale, shift = value.affine
        weight, bias = weight * scale[None, :], bias + weight @ shift
    return ctx.emit(node, Dense("dense", weight, bias), [value], layout="flat", rank=2, sole=True)


@op("Gemm")
def _gemm(node, attrs, ctx):
    if attrs.get("transA", 0):
        raise ctx.fail(node, "transA=1 is not supported")
    value = ctx.value(node, 0, plain=False)
    b = ctx.const(node, 1)
    weight = (b if attrs.get("transB", 0) else b.T) * attrs.get("alpha", 1.0)
    c = ctx.const(node, 2)
    bias = np.zeros(weight.shape[0]) if c is None else np.broadcast_to(c * attrs.get("beta", 1.0),
                                                                        (1, weight.shape[0])).reshape(-1)
    return _dense(node, ctx, value, np.asarray(weight, np.float64), np.asarray(bias, np.float64))


@op("MatMul")
def _matmul(node, attrs, ctx):
    value = ctx.value(node, 0, plain=False)
    b = ctx.const(node, 1)
    if b.ndim != 2:
        raise ctx.fail(node, f"the constant operand must be a matrix, got shape {b.shape}")
    return _dense(node, ctx, value, np.asarray(b.T, np.float64), np.zeros(b.shape[1]))


def _bias(node, ctx, index: int, constant: np.ndarray) -> Value:
    value = ctx.value(node, index)
    layer = ctx.producer(value)
    if layer is None or not layer.weighted or not ctx.sole_reader(node, value, index) or value.layout == "cl":
        raise ctx.fail(node, "an Add of a constant is supported as the bias of the MatMul or Conv right before it "
                             "(and only reader of its output); an Add of two computed tensors is an IR Add")
    out = layer.out_channels
    shape = (1, out) if value.rank == 2 else (1, out, *([1] * (value.rank - 2)))
    try:
        if np.broadcast_shapes(constant.shape, shape) != shape:
            raise ValueError
        bias = np.broadcast_to(constant, shape).reshape(out, -1)[:, 0]
    except ValueError:
        raise ctx.fail(node, f"the constant of shape {constant.shape} is not a bias of {out} outputs") from None
    ctx.replace_layer(layer.name, layer.with_(bias=layer.bias + bias))
    return value.but(sole=True)


def _merge_operands(node, ctx, values: list[Value]) -> list[Value]:
    first = values[0]
    for other in values[1:]:
        same_perm = (first.perm is None and other.perm is None) or (
            first.perm is not None and other.perm is not None and np.array_equal(first.perm, other.perm))
        if other.layout != first.layout or not same_perm:
            raise ctx.fail(node, f"its operands {list(node.input)} are held in different layouts "
                                 f"({first.layout}, {other.layout}); transpose them alike first")
    return values


@op("Add", "Mul")
def _binary(node, attrs, ctx):
    cls = Add if node.op_type == "Add" else Multiply
    consts = [ctx.is_const(node, i) for i in range(2)]
    if all(consts):
        raise ctx.fail(node, "both operands are constants")  # folded before the walk; unreachable in a valid file
    if any(consts):
        if node.op_type == "Mul":
            raise ctx.fail(node, "a Mul by a constant is not supported (only the product of two computed tensors)")
        data = 1 if consts[0] else 0
        return _bias(node, ctx, data, ctx.const(node, 1 - data))
    a, b = _merge_operands(node, ctx, [ctx.value(node, 0), ctx.value(node, 1)])
    dims_a, dims_b = ctx.onnx_dims(a), ctx.onnx_dims(b)
    if dims_a != dims_b:
        big, small = (a, b) if len(ctx.ir_shape(a)) >= len(ctx.ir_shape(b)) else (b, a)
        dims_big, dims_small = ctx.onnx_dims(big), ctx.onnx_dims(small)
        per_channel = (big.layout == "cf" and small.layout == "cf" and len(dims_small) == len(dims_big)
                       and dims_small[0] == dims_big[0] and all(d == 1 for d in dims_small[1:]))
        if not per_channel:
            raise ctx.fail(node, f"operands of shapes (N, {', '.join(map(str, dims_a))}) and "
                                 f"(N, {', '.join(map(str, dims_b))}): hwprune's {cls.__name__} takes equal shapes, "
                                 "or a per-channel (N, C, 1, ...) operand against (N, C, ...)")
        channel = ctx.reshaped(node, small, (dims_small[0],))  # the IR repeats a (C,) operand per position
        operands = [big, channel] if big is a else [channel, big]
        return ctx.emit(node, cls(cls.kind), operands, layout=big.layout, rank=big.rank, perm=big.perm, sole=True)
    return ctx.emit(node, cls(cls.kind), [a, b], sole=True)


@op("Concat")
def _concat(node, attrs, ctx):
    values = _merge_operands(node, ctx, [ctx.value(node, i) for i in range(len(node.input)) if node.input[i]])
    if len(values) == 1:
        return values[0].but(sole=ctx.sole_reader(node, values[0]))
    first = values[0]
    rank = first.rank
    axis = int(attrs.get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    ir_rank = len(ctx.ir_shape(first))
    if first.layout == "cf" and axis >= 1 and ir_rank == rank - 1:
        ir_axis = ir_rank - 1 if axis == 1 else axis - 2  # channels last; spatial axes one place to the front
    elif first.layout in ("flat", "cl") and axis >= 1 and first.perm is None and ir_rank == rank - 1:
        ir_axis = axis - 1
    else:
        raise ctx.fail(node, f"axis={attrs.get('axis', 1)} of a rank-{rank} tensor: hwprune concatenates along "
                             "channels, features or a spatial axis (not the batch, not a flattened conv output)")
    return ctx.emit(node, Concatenate("concatenate", axis=ir_axis), values, sole=True)


@op("Relu")
def _relu(node, attrs, ctx):
    return ctx.emit(node, ReLU("relu"), [ctx.value(node)], sole=True)


@op("Clip")
def _clip(node, attrs, ctx):
    """Bounds as attributes (opset < 11) or constant inputs; Clip(0, 6) is ReLU6."""
    value = ctx.value(node)
    low, high = attrs.get("min"), attrs.get("max")
    if low is None and len(node.input) > 1 and node.input[1]:
        low = ctx.const(node, 1)
    if high is None and len(node.input) > 2 and node.input[2]:
        high = ctx.const(node, 2)
    low = None if low is None else float(np.asarray(low).reshape(-1)[0])
    high = None if high is None else float(np.asarray(high).reshape(-1)[0])
    if low is None and high is None:
        return value.but(sole=ctx.sole_reader(node, value))
    if high is None and low == 0.0:
        return ctx.emit(node, ReLU("relu"), [value], sole=True)
    if low is None or high is None:
        raise ctx.fail(node, f"min={low}, max={high}: a Clip needs both bounds (or min 0 alone, a Relu)")
    if not (np.isfinite(low) and np.isfinite(high) and low <= high):
        raise ctx.fail(node, f"min={low}, max={high}: the bounds must be finite with min <= max")
    return ctx.emit(node, Clip("clip", min_value=low, max_value=high), [value], sole=True)


def flatten(node, ctx, value: Value) -> Value:
    """(N, features): an IR Flatten where the IR tensor has several axes; a channels-first
    tensor's features come in the IR's order (``perm``), as does a waiting BatchNorm's."""
    if value.pad is not None or value.unsqueezed:
        ctx.require_plain(node, value.but(affine=None))
    shape = ctx.ir_shape(value)
    affine = value.affine
    if affine is not None and len(shape) > 1:  # a per-channel norm repeats at every position
        repeat = int(np.prod(shape[:-1]))
        affine = (affine[0], np.tile(affine[1], repeat), np.tile(affine[2], repeat))
    perm = value.perm
    if value.layout == "cf" and len(shape) > 1:
        permutation = flatten_permutation(shape)
        perm = None if np.array_equal(permutation, np.arange(permutation.size)) else permutation
    if len(shape) == 1:
        return value.but(layout="flat", rank=2, perm=perm, affine=affine, sole=ctx.sole_reader(node, value))
    out = ctx.emit(node, Flatten("flatten"), [value.but(affine=None)], layout="flat", rank=2, perm=perm, sole=True)
    return out.but(affine=affine)


def _features(ctx, value: Value) -> int:
    return int(np.prod(ctx.onnx_dims(value)))


def moves_single_channel(target, dims: tuple) -> bool:
    """Whether reshaping an (N, *dims) channels-last tensor to ``target`` is its transpose to
    channels-first: with one channel the two orders are the same (tf2onnx writes a Reshape to
    (-1, 1, H, W) for a one-channel NHWC input)."""
    if target is None or len(dims) not in (2, 3) or dims[-1] != 1:
        return False
    target = [int(d) for d in np.asarray(target).reshape(-1)]
    return len(target) == len(dims) + 1 and target[0] in (-1, 0, 1) and target[1:] == [1, *dims[:-1]]


@op("Flatten")
def _flatten(node, attrs, ctx):
    axis = attrs.get("axis", 1)
    # axis=0 flattens the batch in too: the same as axis=1 when the file fixes the batch at 1
    # (OnnxMLTools writes it so for Keras models converted with a batch of 1).
    if axis != 1 and not (axis == 0 and ctx.batch == 1):
        raise ctx.fail(node, f"only axis=1 (or axis=0 with a batch of 1) is supported, got {axis}")
    return flatten(node, ctx, ctx.value(node, 0, plain=False))


@op("Reshape")
def _reshape(node, attrs, ctx):
    value = ctx.value(node, 0, plain=False)
    shape = ctx.const(node, 1)
    if value.layout == "cl" and moves_single_channel(shape, ctx.onnx_dims(value)):
        return value.but(layout="cf", sole=ctx.sole_reader(node, value))
    if shape is None or shape.size != 2 or int(shape.reshape(-1)[1]) not in (-1, _features(ctx, value)):
        raise ctx.fail(node, f"only a reshape to (batch, features), or of a one-channel channels-last input to "
                             f"channels-first, is supported, got shape {None if shape is None else shape.tolist()}")
    return flatten(node, ctx, value)


@op("Transpose")
def _transpose(node, attrs, ctx):
    """From channels-last to channels-first (at the input: NHWC -> NCHW, NLC -> NCL) or back
    (before Flatten): both are layouts the IR holds natively, so nothing is computed."""
    value = ctx.value(node)
    rank = value.rank
    perm = [int(p) for p in attrs.get("perm", range(rank - 1, -1, -1))]
    to_first = [0, rank - 1, *range(1, rank - 1)]
    to_last = [0, *range(2, rank), 1]
    sole = ctx.sole_reader(node, value)
    if perm == list(range(rank)):
        return value.but(sole=sole)
    if rank in (3, 4) and perm == to_first and value.layout == "cl":
        return value.but(layout="cf", sole=sole)
    if rank in (3, 4) and perm == to_last and value.layout == "cf" and len(ctx.ir_shape(value)) == rank - 1:
        return value.but(layout="cl", sole=sole)
    if rank not in (3, 4):
        raise ctx.fail(node, f"perm={perm} on a tensor of shape {ctx.shape(node)}: it moves the batch axis or the "
                             "features of a (N, features) tensor; a Transpose is supported only between the "
                             "channels-last and channels-first layouts of a 3-D or 4-D tensor")
    raise ctx.fail(node, f"perm={perm} on a tensor of shape {ctx.shape(node)}: a Transpose is supported from "
                         f"channels-last (perm={to_first}, at the input) or to channels-last (perm={to_last}, "
                         "before Flatten)")


@op("Unsqueeze")
def _unsqueeze(node, attrs, ctx):
    value = ctx.value(node, 0, plain=False)
    axes = attrs.get("axes")
    axes = [int(a) for a in np.asarray(ctx.const(node, 1) if axes is None else axes).reshape(-1)]
    rank = value.rank
    axes = sorted(a % (rank + len(axes)) for a in axes)
    if value.unsqueezed or value.pad is not None or any(a < rank for a in axes):
        raise ctx.fail(node, f"axes={axes}: only trailing axes around a BatchNormalization (Unsqueeze, "
                             "BatchNormalization, Squeeze) are supported")
    return value.but(unsqueezed=tuple(axes), sole=ctx.sole_reader(node, value))


@op("Squeeze")
def _squeeze(node, attrs, ctx):
    value = ctx.value(node, 0, plain=False)
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = ctx.const(node, 1)
    dims = (1, *ctx.onnx_dims(value))
    axes = None if axes is None else sorted(int(a) % len(dims) for a in np.asarray(axes).reshape(-1))
    if value.unsqueezed and axes in (None, list(value.unsqueezed)):
        return value.but(unsqueezed=(), sole=ctx.sole_reader(node, value))
    if not value.unsqueezed and axes == list(range(2, len(dims))) and all(dims[a] == 1 for a in axes):
        return flatten(node, ctx, value)  # (N, C, 1, 1) after a global pooling: the same as Flatten
    raise ctx.fail(node, f"axes={axes} on a tensor of shape {dims}: only the Squeeze that undoes an Unsqueeze "
                         "around a BatchNormalization, or of the unit spatial axes after pooling, is supported")


@op("Softmax", "LogSoftmax")
def _softmax(node, attrs, ctx):
    value = ctx.value(node)
    axis = int(attrs.get("axis", -1))
    if len(ctx.ir_shape(value)) != 1 or axis not in (-1, 1):
        raise ctx.fail(node, "only a Softmax over the features of a (N, features) tensor is supported")
    return ctx.emit(node, Softmax("softmax", log=node.op_type == "LogSoftmax"), [value], sole=True)


@op("Identity", "Dropout")
def _skip(node, attrs, ctx):
    value = ctx.value(node, 0, plain=False)
    return value.but(sole=ctx.sole_reader(node, value))


@op("BatchNormalization")
def _batch_norm(node, attrs, ctx):
    value = ctx.value(node, 0, plain=False)
    if value.pad is not None:
        ctx.require_plain(node, value)
    scale, bias, mean, var = (np.asarray(ctx.const(node, i), np.float64) for i in range(1, 5))
    channels = ctx.ir_shape(value)[-1]
    if value.layout == "cl" or scale.shape != (channels,) or not (scale.shape == bias.shape == mean.shape == var.shape):
        raise ctx.fail(node, f"its {scale.size} channels do not match axis 1 of the tensor it reads "
                             f"(N, {', '.join(map(str, ctx.onnx_dims(value)))})")
    scale = scale / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    shift = bias - mean * scale
    if value.perm is not None:  # per ONNX feature; the IR holds them in another order
        scale, shift = scale[value.perm], shift[value.perm]
    layer = ctx.producer(value)
    if value.affine is None and layer is not None and layer.weighted and ctx.sole_reader(node, value):
        ctx.replace_layer(layer.name, fold_after(layer, scale, shift))
        return value.but(sole=True)
    if value.affine is not None:
        where, s0, h0 = value.affine
        scale, shift = s0 * scale, h0 * scale + shift
    else:
        where = label(node, ctx.index)
    return value.but(affine=(where, scale, shift), sole=ctx.sole_reader(node, value))
