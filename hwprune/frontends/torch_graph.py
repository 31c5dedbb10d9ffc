"""A dataflow graph of torch.nn layers -> a float IR graph (shared by ``frontends.torch``,
which reads modules with ``torch.fx``, and ``frontends.torch_export``, which reads ``.pt2``
programs).

The frontends describe a model as ``Op``s in topological order, each a torch.nn leaf module
(or a ``Merge`` for ``+``, ``*`` and ``torch.cat``) with the names of the tensors it reads.
``translate`` maps them to IR layers with named inputs: Identity and Dropout become aliases
of their input, a final Softmax a marker. BatchNorm is folded into the Linear or conv that
writes its input when that layer has no other reader, or else into the one Linear or conv
that reads it (through Identity/Dropout; before a conv only if the conv has no padding). A
ZeroPad/ConstantPad(0) folds into the conv that reads it. A chain of ops gives exactly the
layers and names the chain walk always gave.

torch is channels-first: a model with conv or pooling layers gets a channels-last graph
with ``input_layout="channels_first"``, ``torch.cat``'s ``dim`` is moved to the IR's axis,
and a Linear reading a Flatten of a spatial tensor gets its columns permuted
(``torch_spatial.flatten_permutation``) so the graph computes what the module computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from hwprune.errors import ModelError, ShapeError, UnsupportedLayerError
from hwprune.frontends import torch_activations, torch_spatial
from hwprune.frontends.torch_fold import batchnorm_affine, fold_after, fold_before_conv, linear_arrays
from hwprune.ir.graph import INPUT, Graph, GraphInput, is_c_identifier
from hwprune.ir.activations import BatchNorm
from hwprune.ir.layers import Add, Clip, Concatenate, Dense, Flatten, Layer, Multiply, ReLU, Softmax

SUPPORTED = ("Linear, Conv1d/2d, MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d(1), ReLU, ReLU6, Hardtanh, "
             "Sigmoid, Tanh, SELU, LeakyReLU, PReLU, Hardsigmoid, SiLU, BatchNorm1d/2d (folded into a Linear or conv next to it, else a BatchNorm layer), Flatten, Identity, "
             "Dropout, + (Add), * (Multiply), torch.cat and a final Softmax")


@dataclass(frozen=True)
class Merge:
    """An operation on two or more tensors: ``kind`` is ``add``, ``multiply`` or
    ``concatenate`` (``dim``: torch's axis, counting the batch axis)."""

    kind: str
    dim: int = 1


@dataclass(frozen=True)
class Op:
    """One operation: ``name`` is the tensor it writes, ``path`` names it in messages and
    layer names (a module's dotted path), ``inputs`` the tensors it reads (op names or
    ``INPUT``)."""

    name: str
    path: str
    module: object
    inputs: tuple[str, ...]


def _torch():
    import torch  # deferred: importing torch costs about a second

    return torch


def layer_name(path: str, kind: str, used: set[str]) -> str:
    base = path.replace(".", "_")
    if not is_c_identifier(base):
        base = f"{kind}_{base}"
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name)
    return name


def clip_bounds(path: str, module) -> tuple[float, float]:
    """A Hardtanh/ReLU6 module's clamp bounds."""
    lo, hi = float(module.min_val), float(module.max_val)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise UnsupportedLayerError(f"module {path!r} ({type(module).__name__}): bounds {lo}, {hi} are not a clamp")
    return lo, hi


def _cat_axis(op: Op, dim: int, shape: tuple[int, ...], channels_first: bool) -> int:
    """torch's ``dim`` (with a batch axis, channels-first) as an axis of the IR's tensor."""
    rank = len(shape) + 1
    d = dim + rank if dim < 0 else dim
    if d <= 0 or d >= rank:
        raise UnsupportedLayerError(f"module {op.path!r} (cat): dim={dim} is the batch axis or out of range of a "
                                    f"rank-{rank} tensor; hwprune concatenates features or channels")
    if len(shape) >= 2 and channels_first:
        return -1 if d == 1 else d - 2
    return d - 1


class _Translation:
    """The walk over the ops: state shared by the rules for each kind of op."""

    def __init__(self, ops: list[Op], outputs: tuple[str, ...], input_shape: tuple[int, ...], channels_first: bool):
        nn = _torch().nn
        self.nn = nn
        self.ops = ops
        self.outputs = outputs
        self.channels_first = channels_first
        self.layers: list[Layer] = []
        self.index: dict[str, int] = {}  # IR layer name -> position in ``layers``
        self.used: set[str] = {INPUT}  # a layer named as the graph input would shadow it
        self.tensor: dict[str, str] = {INPUT: INPUT}  # op name -> IR tensor it stands for
        self.shapes: dict[str, tuple] = {INPUT: input_shape}
        self.pending_bn: dict[str, tuple] = {}  # op name -> (path, scale, shift, kind) not yet folded
        self.pending_pad: dict[str, tuple] = {}  # op name -> (path, padding, kind) waiting for its conv
        self.readers: dict[str, int] = {}
        self.root: dict[str, str] = {INPUT: INPUT}
        for op in ops:  # readers per tensor, looking through the ops that only alias their input
            alias = isinstance(op.module, (nn.Identity, nn.Dropout))
            self.root[op.name] = self.root[op.inputs[0]] if alias else op.name
            if not alias:
                for source in op.inputs:
                    self.readers[self.root[source]] = self.readers.get(self.root[source], 0) + 1
        for name in outputs:
            self.readers[self.root[name]] = self.readers.get(self.root[name], 0) + 1

    def add(self, op: Op, layer: Layer, inputs: tuple[str, ...] = ()) -> None:
        layer = layer.with_(inputs=inputs or tuple(self.tensor[s] for s in op.inputs))
        try:
            self.shapes[layer.name] = tuple(layer.output_shape(*(self.shapes[s] for s in layer.inputs)))
        except ShapeError as exc:
            raise ShapeError(f"module {op.path!r} ({self._kind(op)}): {exc}") from None
        self.index[layer.name] = len(self.layers)
        self.layers.append(layer)
        self.tensor[op.name] = layer.name

    def name(self, op: Op, kind: str) -> str:
        return layer_name(op.path, kind, self.used)

    @staticmethod
    def _kind(op: Op) -> str:
        return op.module.kind if isinstance(op.module, Merge) else type(op.module).__name__

    def check_operands(self, op: Op) -> None:
        """A pending BatchNorm or padding may only be read by the layer it folds into."""
        nn = self.nn
        child = op.module
        for source in op.inputs:
            if source in self.pending_pad and not isinstance(child, (nn.Conv1d, nn.Conv2d)):
                path, _, kind = self.pending_pad[source]
                raise UnsupportedLayerError(f"module {path!r} ({kind}) is folded into a conv right after it, but "
                                            f"{op.path!r} ({self._kind(op)}) follows it")
            if source in self.pending_bn and not isinstance(child, (
                    nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.Identity, nn.Dropout,
                    *torch_spatial.spatial_types()[-4:])):
                path, _, _, kind = self.pending_bn[source]
                raise UnsupportedLayerError(
                    f"module {path!r} ({kind}) cannot be folded: {op.path!r} ({self._kind(op)}) comes between it and "
                    "the next Linear or conv; hwprune folds BatchNorm into an adjacent Linear or conv")

    def take_bn(self, op: Op):
        """The pending BatchNorm ``op`` reads (now folded into it), or None."""
        source = op.inputs[0]
        if source not in self.pending_bn:
            return None
        pending = self.pending_bn.pop(source)
        if self.readers.get(self.root[source], 0) > 1:
            raise UnsupportedLayerError(f"module {pending[0]!r} ({pending[3]}) cannot be folded: several layers read "
                                        "it; hwprune folds BatchNorm into the one Linear or conv next to it")
        return pending

    def step(self, op: Op, last: bool) -> None:
        nn = self.nn
        child, path = op.module, op.path
        self.check_operands(op)
        if isinstance(child, Merge):
            self.merge(op)
        elif isinstance(child, nn.Linear):
            weight, bias = linear_arrays(path, child)
            pending = self.take_bn(op)
            if pending is not None:  # Linear(scale * x + shift) = (W diag(scale)) x + (W shift + b)
                _, scale, shift, _ = pending
                weight, bias = weight * scale[None, :], bias + weight @ shift
            self.add(op, Dense(self.name(op, "dense"), weight, bias))
        elif isinstance(child, (nn.Conv1d, nn.Conv2d)):
            pad = self.pending_pad.pop(op.inputs[0], None)
            layer = torch_spatial.conv_layer(path, child, self.name(op, "conv"), pad and pad[1])
            pending = self.take_bn(op)
            self.add(op, fold_before_conv(pending, layer) if pending is not None else layer)
        elif isinstance(child, tuple(torch_spatial.spatial_types()[-4:])):
            padding = torch_spatial.padding_module(path, child)
            self.alias(op)
            self.pending_pad[op.name] = (path, padding, type(child).__name__)
        elif isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            self.batchnorm(op)
        elif isinstance(child, (nn.Identity, nn.Dropout)):
            self.alias(op)
        elif isinstance(child, nn.ReLU):
            self.add(op, ReLU(self.name(op, "relu")))
        elif isinstance(child, nn.Hardtanh):  # ReLU6 is a Hardtanh(0, 6)
            lo, hi = clip_bounds(path, child)
            self.add(op, Clip(self.name(op, "clip"), min_value=lo, max_value=hi))
        elif isinstance(child, torch_activations.module_types()):  # SiLU: a Sigmoid and a Multiply
            names = [layer_name(path + suffix, prefix, self.used) for suffix, prefix in torch_activations.names(child)]
            source = self.tensor[op.inputs[0]]
            for layer in torch_activations.activation_layers(path, child, names, source):
                self.add(op, layer, layer.inputs)
        elif isinstance(child, nn.Flatten):
            if child.start_dim != 1 or child.end_dim != -1:
                raise UnsupportedLayerError(f"module {path!r} (Flatten): only start_dim=1, end_dim=-1 is supported")
            self.add(op, Flatten(self.name(op, "flatten")))
            features = getattr(child, "features", None)  # x.view(-1, n): n must be one example's size
            if features is not None and self.shapes[self.tensor[op.name]] != (features,):
                raise UnsupportedLayerError(f"module {path!r} (view): -1, {features} is not one example's "
                                            f"{self.shapes[self.tensor[op.name]][0]} values flattened")
        elif isinstance(child, torch_spatial.spatial_types()):
            self.add(op, torch_spatial.pool_layer(path, child, self.name(op, "pool")))
        elif isinstance(child, (nn.Softmax, nn.LogSoftmax)) and last:
            self.add(op, Softmax(self.name(op, "softmax"), log=isinstance(child, nn.LogSoftmax)))
        elif isinstance(child, (nn.Softmax, nn.LogSoftmax)):
            raise UnsupportedLayerError(f"module {path!r} ({type(child).__name__}): only supported as the last layer")
        else:
            raise UnsupportedLayerError(f"module {path!r} ({type(child).__name__}) is not supported; hwprune reads "
                                        f"{SUPPORTED}")

    def alias(self, op: Op) -> None:
        """``op`` stands for its input: a BatchNorm or padding waiting to be folded waits on."""
        source = op.inputs[0]
        if source in self.pending_bn:
            self.pending_bn[op.name] = self.pending_bn.pop(source)
        if source in self.pending_pad:
            self.pending_pad[op.name] = self.pending_pad.pop(source)
        self.tensor[op.name] = self.tensor[source]

    def batchnorm(self, op: Op) -> None:
        scale, shift = batchnorm_affine(op.path, op.module)
        source = op.inputs[0]
        producer = self.tensor.get(source)
        if source in self.pending_bn:  # BatchNorm after BatchNorm: one affine map
            first = self.pending_bn.pop(source)
            self.pending_bn[op.name] = (first[0], first[1] * scale, first[2] * scale + shift, first[3])
        elif producer in self.index and self.layers[self.index[producer]].weighted \
                and self.readers.get(self.root[source], 0) == 1:
            at = self.index[producer]
            self.layers[at] = fold_after(self.layers[at], op.path, scale, shift)
        elif not self._folds_forward(op, shift):  # e.g. after an activation and read by several layers
            self.add(op, BatchNorm(self.name(op, "batchnorm"), scale=scale, bias=shift))
            return
        else:
            self.pending_bn[op.name] = (op.path, scale, shift, type(op.module).__name__)
        self.tensor[op.name] = self.tensor[source]

    def _folds_forward(self, op: Op, shift: np.ndarray) -> bool:
        """Whether the BatchNorm ``op`` has one reader, a Linear or conv it folds into exactly
        (or a module that passes it on to one: Identity, Dropout, another BatchNorm). A
        nonzero shift does not fold into zero padding: the padded border would not be shifted."""
        nn = self.nn
        readers = [o for o in self.ops if op.name in o.inputs]
        if len(readers) != 1:
            return False
        child = readers[0].module
        pads = tuple(torch_spatial.spatial_types()[-4:])
        if isinstance(child, pads) or (isinstance(child, (nn.Conv1d, nn.Conv2d)) and _padded(child)):
            return not np.any(shift != 0)
        return isinstance(child, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.Identity,
                                  nn.Dropout))

    def merge(self, op: Op) -> None:
        kind = op.module.kind
        if kind == "add":
            self.add(op, Add(self.name(op, "add")))
        elif kind == "multiply":
            self.add(op, Multiply(self.name(op, "multiply")))
        else:
            shape = self.shapes[self.tensor[op.inputs[0]]]
            axis = _cat_axis(op, op.module.dim, shape, self.channels_first)
            self.add(op, Concatenate(self.name(op, "concatenate"), axis=axis))

    def run(self) -> list[Layer]:
        for index, op in enumerate(self.ops):
            last = op.name in self.outputs and self.readers.get(op.name, 0) == 1 and index == len(self.ops) - 1
            self.step(op, last)
        for path, _, _, kind in self.pending_bn.values():
            raise UnsupportedLayerError(f"module {path!r} ({kind}) cannot be folded: no Linear or conv follows it")
        for path, _, kind in self.pending_pad.values():
            raise UnsupportedLayerError(f"module {path!r} ({kind}): no conv follows it to fold the padding into")
        return self.layers


def _padded(conv) -> bool:
    padding = conv.padding
    if isinstance(padding, str):
        return padding != "valid"
    return any(int(p) != 0 for p in padding)


def translate(ops: list[Op], outputs: tuple[str, ...], name: str, input_shape: Optional[tuple[int, ...]] = None,
              fallback_input_shape: Optional[tuple[int, ...]] = None) -> Graph:
    """The float IR graph of ``ops`` (topological order), returning the tensors ``outputs``.

    ``input_shape`` is one example's shape in the source's layout; without it, it is read off
    a Linear that reads the input, else taken from ``fallback_input_shape``.
    """
    if not is_c_identifier(name):
        raise ModelError(f"model name {name!r} must be a C identifier")
    spatial = any(isinstance(op.module, torch_spatial.spatial_types()) for op in ops)
    shape = input_shape
    if shape is None and not spatial:
        shape = _first_linear(ops)
    if shape is None:
        shape = fallback_input_shape
    if shape is None:
        if spatial:
            raise ModelError("cannot infer the input shape of a conv model: pass input_shape as the model takes it, "
                             "(channels, length) or (channels, height, width) (hwprune export takes it from "
                             "--calibration)")
        raise ModelError("cannot infer the input shape: the model does not start with a Linear layer; pass "
                         "input_shape (hwprune export takes it from --calibration)")
    shape = tuple(int(d) for d in shape)
    if spatial:
        _check_spatial_input(ops, shape)
        shape = (*shape[1:], shape[0])
    walk = _Translation(ops, outputs, shape, spatial)
    layers = walk.run()
    results = tuple(dict.fromkeys(walk.tensor[o] for o in outputs))
    if any(r == INPUT for r in results):
        raise ModelError(f"model {name!r}: an output is the input itself; there is no layer to compute")
    graph = Graph(name, (GraphInput(INPUT, shape),), tuple(layers), outputs=results,
                  input_layout="channels_first" if spatial else "channels_last")
    return _permute_flattened(graph) if spatial else graph


def _first_linear(ops: list[Op]) -> Optional[tuple[int, ...]]:
    """The input shape a first Linear implies (Identity, Dropout and BatchNorm may come before it)."""
    nn = _torch().nn
    first = next((op for op in ops if not isinstance(op.module, (nn.Identity, nn.Dropout, nn.BatchNorm1d))), None)
    if first is not None and isinstance(first.module, nn.Linear):
        return (int(first.module.in_features),)
    return None


def _check_spatial_input(ops: list[Op], shape: tuple[int, ...]) -> None:
    nn = _torch().nn
    if len(shape) < 2:
        raise ShapeError(f"a conv model takes (channels, length) or (channels, height, width) inputs; got {shape}")
    first = next(op for op in ops if isinstance(op.module, torch_spatial.spatial_types()))
    two_d = any(isinstance(first.module, t) for t in (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                                                        nn.ZeroPad2d, nn.ConstantPad2d))
    if len(shape) != (3 if two_d else 2):  # said here in the source's layout, not the IR's channels-last one
        kind = "conv2d" if isinstance(first.module, nn.Conv2d) else "conv1d" if isinstance(first.module, nn.Conv1d) \
            else type(first.module).__name__
        raise ShapeError(f"layer {first.path!r} ({kind}) takes (channels, {'height, width' if two_d else 'length'})"
                         f" inputs as the source model does; got {shape} per example")


def _permute_flattened(graph: Graph) -> Graph:
    """Linear columns reordered after a Flatten of a spatial tensor: torch flattens
    ``(C, H, W)``, the IR ``(H, W, C)``. Every reader of such a Flatten (through ReLU, Clip
    and Flatten) must be a Linear, else the features would be in another order."""
    layers = {layer.name: layer for layer in graph.layers}
    for layer in graph.layers:
        flat_in = graph.input_shape_of_layer(layer) if isinstance(layer, Flatten) else ()
        if len(flat_in) < 2:
            continue
        frontier, seen = [layer.name], set()
        while frontier:
            tensor = frontier.pop()
            readers = graph.consumers(tensor)
            if not readers and tensor in graph.outputs or any(
                    not isinstance(r, (ReLU, Clip, Flatten, Dense)) for r in readers):
                raise UnsupportedLayerError(
                    f"layer {layer.name!r} (Flatten) of a {flat_in} tensor must be followed by a Linear (hwprune "
                    "flattens channels-last and reorders that Linear's columns)")
            for reader in readers:
                if isinstance(reader, Dense) and reader.name not in seen:
                    seen.add(reader.name)
                    dense = layers[reader.name]
                    columns = torch_spatial.flatten_permutation(flat_in)
                    layers[reader.name] = dense.with_(weight=dense.weight[:, columns])
                elif not isinstance(reader, Dense):
                    frontier.append(reader.name)
    return graph.with_layers([layers[layer.name] for layer in graph.layers])
