"""What hls4ml 1.3.0 changes in a graph for ``io_stream``, and the checks that it is exact.

With ``IOType: io_stream`` hls4ml's streaming flow rewrites the graph:

- a convolution with padding gets a ``ZeroPadding1D``/``ZeroPadding2D`` layer before it
  (named ``zp1d_<conv>``/``zp2d_<conv>``), and the convolution itself becomes 'valid';
  the padding layer's output type is set to the convolution's input type, so the zeros
  and the copied values are exact;
- a Reshape whose result is not flat, or that is the model's output, becomes a ``Repack``
  (``repack_<reshape>``) that only regroups the stream; a Flatten (a Reshape to 1-D)
  inside the model is made in place and stays under its own name;
- a tensor that several layers read gets a ``Clone`` (``clone_<producer>``) that copies
  its stream once per reader, of the producer's type.

Nothing else may be added: every inserted layer is checked against these rules, and its
output type against the type hwprune's integer reference carries at that point.
"""

from __future__ import annotations

from hwprune.errors import ModelError

#: hls4ml class name -> the prefix of its name, then the IR layer it was inserted for
PADDING = {"ZeroPadding1D": "zp1d_", "ZeroPadding2D": "zp2d_"}
REPACK = ("Repack", "repack_")
CLONE = ("Clone", "clone_")


def inserted_layers(model, graph, converted: tuple[str, ...], same_type) -> dict[str, str]:
    """hls4ml layers that stand in for, or precede, an IR layer in io_stream: name -> the
    IR layer's name. ``same_type(precision, fixed)`` compares an hls4ml precision with a
    hwprune type. A layer that breaks the rules above is a ModelError naming it."""
    if str(model.config.get_config_value("IOType")) != "io_stream":
        return {}
    out = {}
    for node in model.get_layers():
        if node.name in converted or node.name not in _candidates(node):
            continue
        prefix = PADDING.get(node.class_name) or (CLONE[1] if node.class_name == CLONE[0] else REPACK[1])
        target = node.name[len(prefix):]
        if node.class_name == CLONE[0] and target == model.inputs[0]:
            if not all(same_type(v.type.precision, graph.input_t) for v in node.variables.values()):
                raise ModelError(f"layer {node.name!r} (inserted by hls4ml for io_stream) copies the input to "
                                 f"another type than {graph.input_t.hls()}")
            out[node.name] = target
            continue
        if graph.producer(target) is None or target not in converted:
            raise ModelError(f"hls4ml inserted {node.class_name} {node.name!r} for a layer hwprune does not know")
        layer = graph.layer(target)
        if node.class_name in PADDING:
            if not layer.kind.startswith("conv"):
                raise ModelError(f"hls4ml inserted {node.name!r} before {target!r}, which is not a convolution")
            (expected,) = graph.input_types(layer)  # the convolution's input, padded with exact zeros
        elif node.class_name == CLONE[0]:
            expected = graph.type_of(target)  # every copy of the producer's stream
        else:
            if layer.kind not in ("flatten", "reshape"):
                raise ModelError(f"hls4ml repacks {target!r}, which is not a Flatten or Reshape")
            expected = graph.type_of(target)  # a Reshape passes its input's type on
        for variable in node.variables.values():
            got = variable.type.precision
            if not same_type(got, expected):
                raise ModelError(f"layer {node.name!r} (inserted by hls4ml for io_stream): its type is {got}, "
                                 f"expected {expected.hls()}")
        out[node.name] = target
    return out


def _candidates(node) -> set[str]:
    prefix = PADDING.get(node.class_name) or dict((REPACK, CLONE)).get(node.class_name)
    return {node.name} if prefix and node.name.startswith(prefix) else set()
