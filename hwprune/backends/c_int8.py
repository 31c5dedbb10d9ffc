"""C for TFLite's int8 dialect: ``model_int8.c`` (weights, one call per layer) over the
hand-written kernels of ``templates/c/hwprune_int8.h``, and a host engine that runs it.

A weighted layer whose weights are mostly zeros stores only its nonzero weights, per
output channel (values, their column or (kh, kw, cin) tap, and where each channel starts):
zero weights are never multiplied. One with more than half nonzero (``DENSE_ABOVE``) stores
every weight in the file's order, one byte each, and its kernel walks them with no index. Activations live in one static int8 arena planned by tensor liveness
(``backends.c.arena``, the planner the ap_fixed C uses), so a graph whose tensors branch
and join (a residual ADD) keeps each tensor until its last reader; on a chain it is the
ping-pong of two buffers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from hwprune.backends.c import arena
from hwprune.errors import ModelError
from hwprune.ir.graph import Graph
from hwprune.paths import templates_dir

HEADER = "hwprune_int8.h"
DENSE_ABOVE = 0.5  # nonzero fraction above which a layer's weights are stored dense
SOURCE = "model_int8.c"


def _array(ctype: str, name: str, values) -> str:
    values = [int(v) for v in np.asarray(values).reshape(-1)] or [0]
    body = ",".join(str(v) for v in values)
    return f"static const {ctype} {name}[{len(values)}] = {{{body}}};\n"


def _nonzeros(layer, conv: bool):
    w = layer.filter_matrix.astype(np.int64)
    starts, cols, vals = [0], [], []
    for row in w:
        nz = np.flatnonzero(row)
        vals.extend(row[nz])
        if conv:
            kh, kw, cin = layer.weight.shape[1:]
            for k in nz:
                cols.extend((k // (kw * cin), (k // cin) % kw, k % cin))
        else:
            cols.extend(nz)
        starts.append(len(vals))
    return starts, cols, vals


def plan_int8(graph: Graph) -> arena.Arena:
    """Where each layer's output lives in one static int8 arena: step ``i`` writes layer
    ``i``'s tensor, which stays live until its last reader (the graph output until the
    final copy), so two tensors share bytes only when no step needs both."""
    steps = {layer.name: i for i, layer in enumerate(graph.layers)}
    end = len(graph.layers)  # the copy into ``out`` after the last layer
    buffers = []
    for layer in graph.layers:
        readers = [steps[c.name] for c in graph.consumers(layer.name)]
        last = max([steps[layer.name], *readers, *([end] if layer.name in graph.outputs else [])])
        buffers.append(arena.Buffer(layer.name, int(np.prod(graph.shape_of(layer.name))), steps[layer.name], last))
    return arena.plan(buffers)


def stored_dense(layer) -> bool:
    """Whether a weighted layer keeps every weight (one byte each, no index): above
    ``DENSE_ABOVE`` nonzeros the per-weight index costs more flash and cycles than the
    zeros it skips."""
    return layer.nonzero_weights > DENSE_ABOVE * layer.weight.size


def _weighted(layer, p: str, src: str, dst: str, in_t, in_shape, out_shape) -> tuple[list[str], str]:
    """The constant arrays and the kernel call of an int8 FULLY_CONNECTED or convolution."""
    conv = layer.kind == "int8_conv2d"
    dense = stored_dense(layer)
    common = [_array("int32_t", f"{p}_bias", layer.bias), _array("int32_t", f"{p}_mult", layer.out_multiplier),
              _array("int8_t", f"{p}_shift", layer.out_shift)]
    if dense:
        arrays = [_array("int8_t", f"{p}_w", layer.filter_matrix), *common]
        weights = f"{p}_w"
    else:
        starts, cols, vals = _nonzeros(layer, conv)
        arrays = [_array("uint32_t", f"{p}_start", starts), _array("uint16_t", f"{p}_cols", cols),
                  _array("int8_t", f"{p}_vals", vals), *common]
        weights = f"{p}_start, {p}_cols, {p}_vals"
    q = f"{p}_bias, {p}_mult, {p}_shift, {in_t.zero_point}, {layer.result_t.zero_point}, {layer.act_min}, {layer.act_max}"
    suffix = "dense_s8" if dense else "s8"
    if not conv:
        n_in = f"{layer.filter_matrix.shape[1]}, " if dense else ""
        return arrays, f"hwp_fc_{suffix}({src}, {dst}, {n_in}{layer.out_features}, {weights}, {q});"
    (ih, iw, ic), (oh, ow, oc) = in_shape, out_shape
    mult = layer.out_channels // ic if layer.depthwise else 0
    window = f"{layer.weight.shape[1]}, {layer.weight.shape[2]}, " if dense else ""
    return arrays, (f"hwp_conv_{suffix}({src}, {dst}, {ih}, {iw}, {ic}, {oh}, {ow}, {oc}, {window}{layer.stride[0]}, "
                    f"{layer.stride[1]}, {layer.padding[0][0]}, {layer.padding[1][0]}, {mult}, {weights}, {q});")


def render_int8(graph: Graph) -> str:
    """The C of an int8 graph: ``void <name>_predict(const int8_t *in, int8_t *out)``, with a
    ``HWPRUNE_INT8_TRACE(index, data, size)`` hook after every layer."""
    data, calls = [], []
    plan = plan_int8(graph)
    where = {graph.input.name: "in"}
    for layer in graph.layers:
        offset = plan.offsets[layer.name]
        where[layer.name] = "hwp_arena" if offset == 0 else f"(hwp_arena + {offset})"
    sizes = [int(np.prod(graph.shape_of(layer.name))) for layer in graph.layers]
    for i, layer in enumerate(graph.layers):
        out_shape = graph.shape_of(layer.name)
        srcs = [where[s] for s in layer.inputs]
        src, dst = srcs[0], where[layer.name]
        in_t, in_shape = graph.input_types(layer)[0], graph.input_shapes(layer)[0]
        p = f"l{i}"
        if layer.kind in ("int8_dense", "int8_conv2d"):
            arrays, call = _weighted(layer, p, src, dst, in_t, in_shape, out_shape)
            data += arrays
            calls.append(call)
        elif layer.kind in ("int8_avgpool2d", "int8_maxpool2d"):
            (ih, iw, c), (oh, ow, _) = in_shape, out_shape
            calls.append(f"hwp_pool_s8({src}, {dst}, {ih}, {iw}, {c}, {oh}, {ow}, {layer.pool_size[0]}, "
                         f"{layer.pool_size[1]}, {layer.stride[0]}, {layer.stride[1]}, {layer.padding[0][0]}, "
                         f"{layer.padding[1][0]}, {int(layer.kind == 'int8_maxpool2d')}, {layer.act_min}, "
                         f"{layer.act_max});")
        elif layer.kind == "int8_add":
            a_t, b_t = graph.input_types(layer)
            q = layer.params(a_t, b_t)
            calls.append(f"hwp_add_s8({srcs[0]}, {srcs[1]}, {dst}, {sizes[i]}, {q.input1_offset}, {q.input2_offset}, "
                         f"{q.left_shift}, {q.input1_multiplier}, {q.input1_shift}, {q.input2_multiplier}, "
                         f"{q.input2_shift}, {q.output_multiplier}, {q.output_shift}, {q.output_offset}, {q.act_min}, "
                         f"{q.act_max});")
        elif layer.kind in ("reshape", "softmax"):  # the bytes unchanged (the arena keeps tensors apart)
            calls.append(f"for (int k = 0; k < {sizes[i]}; k++) {dst}[k] = {src}[k];")
        else:
            raise ModelError(f"layer {layer.name!r}: the int8 C backend has no kernel for {layer.kind!r}")
        calls.append(f"HWPRUNE_INT8_TRACE({i}, {dst}, {sizes[i]});")
    body = "\n    ".join(calls)
    return (f"/* {graph.name}: TFLite int8, generated by hwprune */\n#include <stdint.h>\n#include \"{HEADER}\"\n"
            "#ifndef HWPRUNE_INT8_TRACE\n#define HWPRUNE_INT8_TRACE(index, data, size) ((void)0)\n#endif\n"
            + "".join(data)
            + f"/* activations: {plan.nbytes} bytes planned by liveness (at least {plan.live_bound} are live at once) */\n"
            f"static int8_t hwp_arena[{max(plan.nbytes, 1)}];\n"
            f"void {graph.name}_predict(const int8_t *in, int8_t *out) {{\n    {body}\n"
            f"    for (int k = 0; k < {int(np.prod(graph.output_shape))}; k++) out[k] = {where[graph.output]}[k];\n}}\n")




def write_int8_c(graph: Graph, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SOURCE).write_text(render_int8(graph))
    shutil.copyfile(templates_dir() / "c" / HEADER, out_dir / HEADER)
    return [out_dir / SOURCE, out_dir / HEADER]
