"""C for TFLite's int8 dialect: ``model_int8.c`` (weights, one call per layer) over the
hand-written kernels of ``templates/c/hwprune_int8.h``, ``hwprune_int8_simd.h``,
``hwprune_int8_dsp.h``, ``hwprune_int8_pairs.h``, ``hwprune_int8_quads.h`` and
``hwprune_int8_dw.h``, and a host engine that runs it.

Where everything lives and how each layer is stored is decided in ``backends.c_int8_plan``.
Each weighted layer is stored whichever way its estimated Cortex-M4 cycles favour
(``stored_dense``). Sparse: each output channel's nonzero weights (values, their column or
(kh, kw, cin) tap, where each channel starts), so zero weights are never multiplied.
Dense: every weight, one byte each, in the order the DSP kernels read (``block_rows``:
four FULLY_CONNECTED rows interleaved a word at a time; ``conv_records``: a convolution's
rows four at a time (int16 where the model's weight bytes allow, ``wide_weights``), the last
two at a time, beside their biases and requantization constants;
``depthwise_weights``: int16, four channels a tap; a 3x3 depthwise layer of stride 1 or 2
in pairs of taps, ``backends.c_int8_dw``); cores without the DSP extension run scalar
kernels over the same arrays. Activations live in one static int8 arena planned by tensor
liveness (``backends.c.arena``, the planner the ap_fixed C uses), so a graph whose tensors
branch and join (a residual ADD) keeps each tensor until its last reader; on a chain it is
the ping-pong of two buffers; a 3x3 depthwise layer's ring of widened rows is a buffer of
the arena live while it runs (``depthwise_rings``), and a 1x1 convolution read only by such a
layer runs inside it, straight into its ring (``fused_producers``, ``hwp_pwdw3_s8``). The last
layer writes the caller's ``out``. The
DSP kernels widen inputs into int16 scratch placed in the arena's gaps while their layer
runs (``scratch_offsets``); a narrowing FULLY_CONNECTED reads its int8 input directly
(``widens_input``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from hwprune.backends.c import arena
from hwprune.backends.c_int8_layout import block_rows, conv_records, depthwise_weights, k4_filters
from hwprune.backends.c_int8_dw import depthwise_call, fused_call
from hwprune.backends.c_int8_plan import (fused_producers, k4_padded, layout, pointwise, scratch_for, stored_dense,
                                          widens_input, writes_output)
from hwprune.backends.c_int8_rq import HWP_RQ_FOLDED, ring_words, rq_arrays
from hwprune.errors import ModelError
from hwprune.ir.graph import Graph
from hwprune.ir.int8_types import add_operand, wrap_int32
from hwprune.paths import templates_dir

HEADER = "hwprune_int8.h"
HEADERS = (HEADER, "hwprune_int8_dsp.h", "hwprune_int8_simd.h", "hwprune_int8_pairs.h", "hwprune_int8_quads.h",
           "hwprune_int8_dw.h", "hwprune_int8_dw_loops.h")
# ADDs of at least this many values read each operand's scaled value from a table of 256
# int32 (2 KiB of flash per ADD; two multiplies fewer per value)
ADD_TABLE_FROM = 1024
SOURCE = "model_int8.c"
FUSED = "hwp_pwdw3_s8"  # the kernel of a depthwise layer that runs the 1x1 convolution before it
INT32_MIN = -(1 << 31)


def _array(ctype: str, name: str, values, aligned: bool = False) -> str:
    """``aligned``: on a word boundary, as LDM (the DSP kernels' loads of weight words) needs."""
    values = [int(v) for v in np.asarray(values).reshape(-1)] or [0]
    body = ",".join(str(v) for v in values)
    align = " __attribute__((aligned(4)))" if aligned else ""
    return f"static const {ctype} {name}[{len(values)}]{align} = {{{body}}};\n"


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


def _weighted(layer, p: str, src: str, dst: str, in_t, in_shape, out_shape, ring=None, pw=None,
              into_ring: bool = False, wide: bool = False) -> tuple[list[str], str]:
    """The constant arrays and the kernel call of an int8 FULLY_CONNECTED or convolution;
    ``ring``: (plan, channels per pass, outputs per strip, the ring's C address) of a
    ``hwp_dw3_s8`` layer; ``pw``: (layer, its prefix, its input's C address, its input type)
    of the 1x1 convolution such a layer runs (``fused_producers``), whose own arrays are
    written ``into_ring`` (its records in the ring's form, no call of its own)."""
    conv = layer.kind == "int8_conv2d"
    dense = stored_dense(layer)
    if np.any(np.asarray(layer.out_multiplier) == INT32_MIN):  # the kernels' requantization assumes none
        raise ModelError(f"layer {layer.name!r}: output multiplier {INT32_MIN} is not a TFLite multiplier (they lie "
                         "in [2^30, 2^31) or are 0)")
    if ring is not None:  # 3x3, stride 1 or 2: a ring of widened rows, weights in pairs of taps
        plan, block, strip, address = ring
        kq = [_array("int32_t", f"{p}_kq", plan.table, aligned=True)]
        if pw is not None:
            source, pw_p, pw_src, pw_in_t = pw
            return kq, fused_call(layer, plan, address, p, dst, in_shape, out_shape, pw_src, pw_p,
                                  int(source.weight.shape[-1]), pw_in_t)
        return kq, depthwise_call(layer, plan, block, strip, address, p, src, dst, in_t, in_shape, out_shape)
    if into_ring:  # runs inside the depthwise layer after it: records whose constants give its ring values
        # biases doubled, as its columns are: the doubled sum the requantization takes, no LSL (ring_words
        # proves that 2 |acc|, and so 2 |bias|, fits int32)
        records = conv_records(layer.filter_matrix, 2 * np.asarray(layer.bias, dtype=np.int64), layer.out_multiplier,
                               ring_words(layer, in_t), True, wide)
        return [_array("int8_t", f"{p}_w", records, aligned=True)], f"/* runs inside the next layer: {FUSED} */"
    shift, out_zp = rq_arrays(layer, in_t)
    common = [_array("int32_t", f"{p}_bias", layer.bias), _array("int32_t", f"{p}_mult", layer.out_multiplier),
              _array("int32_t", f"{p}_shift", shift)]
    q, q_plain = (f"{p}_bias, {p}_mult, {p}_shift, {in_t.zero_point}, {z}, {layer.act_min}, {layer.act_max}"
                  for z in (out_zp, layer.result_t.zero_point))
    plain = [*common[:2], _array("int32_t", f"{p}_shift", layer.out_shift)]  # the kernels without hwp_rq
    if conv:
        (ih, iw, ic), (oh, ow, oc) = in_shape, out_shape
        mult = layer.out_channels // ic if layer.depthwise else 0
        geometry = (f"{layer.stride[0]}, {layer.stride[1]}, {layer.padding[0][0]}, {layer.padding[1][0]}")
        kh, kw = layer.weight.shape[1:3]
    if dense and conv and mult == 1:  # one filter per channel: int16, four channels of a tap in two words
        return ([_array("int16_t", f"{p}_w", depthwise_weights(layer.weight[..., 0]), aligned=True), *common],
                f"hwp_dwconv_s8({src}, {dst}, {ih}, {iw}, {ic}, {oh}, {ow}, {kh}, {kw}, {geometry}, {p}_w, {q});")
    if dense and conv and mult > 1:  # several filters per channel: the scalar kernel, weights as stored
        return ([_array("int8_t", f"{p}_w", layer.filter_matrix), *plain],
                f"hwp_conv_dense_scalar_s8({src}, {dst}, {ih}, {iw}, {ic}, {oh}, {ow}, {oc}, {kh}, {kw}, {geometry}, "
                f"{mult}, {p}_w, {q_plain});")
    if dense and conv:  # records: rows in pairs beside their constants; filters padded to words (k4)
        k4 = k4_padded(layer)
        matrix = k4_filters(layer.weight) if k4 else layer.filter_matrix
        folded = out_zp >= HWP_RQ_FOLDED and (layer.act_min, layer.act_max) == (-128, 127)  # HWP_FOLDED
        records = conv_records(matrix, layer.bias, layer.out_multiplier, shift, folded, wide)
        zq = f"{in_t.zero_point}, {out_zp}, {layer.act_min}, {layer.act_max}"
        return ([_array("int8_t", f"{p}_w", records, aligned=True)],
                f"hwp_conv_{'k4' if k4 else 'dense'}_s8({src}, {dst}, {ih}, {iw}, {ic}, {oh}, {ow}, {oc}, {kh}, "
                f"{kw}, {geometry}, {p}_w, {zq}, hwp_scratch);")
    if dense:
        arrays = [_array("int8_t", f"{p}_w", block_rows(layer.filter_matrix, 4), aligned=True), *common]
        if not conv and not widens_input(layer):  # the int8 input read directly: zero point folded into the bias
            folded = wrap_int32(np.asarray(layer.bias, dtype=np.int64)
                                - in_t.zero_point * layer.filter_matrix.astype(np.int64).sum(axis=1))
            q0 = f"{p}_bias, {p}_mult, {p}_shift, 0, {out_zp}, {layer.act_min}, {layer.act_max}"
            return ([arrays[0], _array("int32_t", f"{p}_bias", folded), *common[1:]],
                    f"hwp_fc_dense_s8({src}, {dst}, {layer.filter_matrix.shape[1]}, {layer.out_features}, {p}_w, {q0}, "
                    "(int16_t *)0);")
        return arrays, (f"hwp_fc_dense_s8({src}, {dst}, {layer.filter_matrix.shape[1]}, {layer.out_features}, "
                        f"{p}_w, {q}, hwp_scratch);")
    starts, cols, vals = _nonzeros(layer, conv and not pointwise(layer))
    arrays = [_array("uint32_t", f"{p}_start", starts), _array("uint16_t", f"{p}_cols", cols),
              _array("int8_t", f"{p}_vals", vals)]
    weights = f"{p}_start, {p}_cols, {p}_vals"
    if pointwise(layer):  # no padding: the zero point folds into the bias
        folded = wrap_int32(np.asarray(layer.bias, dtype=np.int64)
                            - in_t.zero_point * layer.filter_matrix.astype(np.int64).sum(axis=1))
        pixels, in_c = (1, layer.filter_matrix.shape[1]) if not conv else (oh * ow, ic)
        return ([*arrays, _array("int32_t", f"{p}_folded", folded), *common[1:]],
                f"hwp_pw_sparse_s8({src}, {dst}, {pixels}, {in_c}, {layer.out_channels if conv else layer.out_features}, "
                f"{weights}, {p}_folded, {p}_mult, {p}_shift, {out_zp}, {layer.act_min}, "
                f"{layer.act_max});")
    arrays += plain
    return arrays, (f"hwp_conv_s8({src}, {dst}, {ih}, {iw}, {ic}, {oh}, {ow}, {oc}, {geometry}, {mult}, {weights}, "
                    f"{q_plain});")


def layer_function(index: int) -> str:
    """The C function that runs layer ``index`` in ``model_int8.c`` (one per layer, kept out
    of line so that the emulator can charge each layer its own cycles)."""
    return f"hwp_layer_{index}"


def _calls(graph: Graph, wide: bool = False) -> tuple[list[list[str]], list[str], dict, arena.Arena, int]:
    """Each layer's constant arrays and C statement, where each tensor lives, the arena's plan
    and the arena's bytes on DSP cores (``scratch_offsets``); ``wide``: convolutions' quad
    records with int16 weights (``c_int8_plan.wide_weights``)."""
    data, calls = [[] for _ in graph.layers], []
    fused = fused_producers(graph)
    buffers, rings, plan = layout(graph, fused)
    scratch, dsp_bytes = scratch_for(graph, plan, buffers, fused)
    inside = {source.name for source in fused.values()}
    names = [layer.name for layer in graph.layers]
    where = {graph.input.name: "in"}
    for layer in graph.layers:
        if writes_output(graph, layer):
            where[layer.name] = "out"
            continue
        if layer.name in inside:  # no tensor: its rows go straight into the next layer's ring
            where[layer.name] = None
            continue
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
            ring = rings.get(layer.name)
            if ring is not None:
                ring = (*ring, f"(int16_t *)(void *)(hwp_arena + {plan.offsets[layer.name + '#ring']})")
            source = fused.get(layer.name)
            pw = None if source is None else (source, f"l{names.index(source.name)}", where[source.inputs[0]],
                                              graph.input_types(source)[0])
            arrays, call = _weighted(layer, p, src, dst, in_t, in_shape, out_shape, ring, pw, layer.name in inside,
                                     wide)
            data[i] = arrays
            calls.append(call.replace("hwp_scratch", f"HWP_SCRATCH({scratch.get(layer.name, 0)})"))
        elif layer.kind in ("int8_avgpool2d", "int8_maxpool2d"):
            (ih, iw, c), (oh, ow, _) = in_shape, out_shape
            calls.append(f"hwp_pool_s8({src}, {dst}, {ih}, {iw}, {c}, {oh}, {ow}, {layer.pool_size[0]}, "
                         f"{layer.pool_size[1]}, {layer.stride[0]}, {layer.stride[1]}, {layer.padding[0][0]}, "
                         f"{layer.padding[1][0]}, {int(layer.kind == 'int8_maxpool2d')}, {layer.act_min}, "
                         f"{layer.act_max});")
        elif layer.kind == "int8_add":
            a_t, b_t = graph.input_types(layer)
            q = layer.params(a_t, b_t)
            if sizes[i] >= ADD_TABLE_FROM:
                values = np.arange(-128, 128)
                data[i] = [_array("int32_t", f"{p}_ta", add_operand(values, q, 1)),
                           _array("int32_t", f"{p}_tb", add_operand(values, q, 2))]
                calls.append(f"hwp_add_lut_s8({srcs[0]}, {srcs[1]}, {dst}, {sizes[i]}, {p}_ta, {p}_tb, "
                             f"{q.output_multiplier}, {q.output_shift}, {q.output_offset}, {q.act_min}, {q.act_max});")
                continue
            calls.append(f"hwp_add_s8({srcs[0]}, {srcs[1]}, {dst}, {sizes[i]}, {q.input1_offset}, {q.input2_offset}, "
                         f"{q.left_shift}, {q.input1_multiplier}, {q.input1_shift}, {q.input2_multiplier}, "
                         f"{q.input2_shift}, {q.output_multiplier}, {q.output_shift}, {q.output_offset}, {q.act_min}, "
                         f"{q.act_max});")
        elif layer.kind in ("reshape", "softmax"):  # the bytes unchanged (the arena keeps tensors apart)
            calls.append(f"for (int k = 0; k < {sizes[i]}; k++) {dst}[k] = {src}[k];")
        else:
            raise ModelError(f"layer {layer.name!r}: the int8 C backend has no kernel for {layer.kind!r}")
    return data, calls, where, plan, dsp_bytes


def layer_arrays(graph: Graph, wide: bool = False) -> list[list[str]]:
    """Each layer's constant arrays in ``model_int8.c``, in layer order, as ``render_int8``
    writes them (the report counts a weighted layer's bytes)."""
    return _calls(graph, wide)[0]


def layer_kernels(graph: Graph) -> list[str]:
    """The kernel each layer's C calls (``copy`` for a plain byte copy, ``(hwp_pwdw3_s8)`` for a
    convolution that runs inside the next layer's), in layer order."""
    return [call.split("(")[0] if call.startswith("hwp_") else f"({FUSED})" if FUSED in call else "copy"
            for call in _calls(graph)[1]]


def render_int8(graph: Graph, wide: bool = False) -> str:
    """The C of an int8 graph: ``void <name>_predict(const int8_t *in, int8_t *out)`` calling
    one function per layer (``layer_function``), with a ``HWPRUNE_INT8_TRACE(index, data,
    size)`` hook after every layer; ``wide``: quad records with int16 weights (HWP_QUAD_WIDE)."""
    data, calls, where, plan, dsp_bytes = _calls(graph, wide)
    sizes = [int(np.prod(graph.shape_of(layer.name))) for layer in graph.layers]
    functions = "".join(f"static __attribute__((noinline)) void {layer_function(i)}(const int8_t *in, int8_t *out) "
                        f"{{\n    (void)in;\n    (void)out;\n    {call}\n}}\n" for i, call in enumerate(calls))

    def trace(i: int, layer) -> str:
        if where[layer.name] is not None:
            return f"HWPRUNE_INT8_TRACE({i}, {where[layer.name]}, {sizes[i]});"
        # a convolution inside the next layer keeps no output: the trace recomputes it
        (h, w_, k), c = graph.input_shapes(layer)[0], graph.shape_of(layer.name)[-1]
        return (f"\n#ifdef HWPRUNE_INT8_TRACED\n    hwp_pw_traced({i}, {where[layer.inputs[0]]}, {h * w_}, {k}, l{i}_w, "
                f"{graph.input_types(layer)[0].zero_point}, {c});\n#endif")

    body = "\n    ".join(f"{layer_function(i)}(in, out);\n    {trace(i, layer)}" for i, layer in enumerate(graph.layers))
    return (f"/* {graph.name}: TFLite int8, generated by hwprune */\n#include <stdint.h>\n"
            + ("#define HWP_QUAD_WIDE 1 /* the convolutions' quad records hold int16 weights */\n" if wide else "")
            + f"#include \"{HEADER}\"\n"
            "#ifndef HWPRUNE_INT8_TRACE\n#define HWPRUNE_INT8_TRACE(index, data, size) ((void)0)\n"
            "#else\n#define HWPRUNE_INT8_TRACED 1\n#endif\n"
            + "".join(array for arrays in data for array in arrays)
            + f"/* activations: {plan.nbytes} bytes planned by liveness (at least {plan.live_bound} are live at once); "
            f"on DSP cores {dsp_bytes} with the dense kernels' widened inputs (hwprune_int8_simd.h) in the gaps */\n"
            "#if HWP_SIMD\n"
            f"static int8_t hwp_arena[{max(dsp_bytes, 1)}] __attribute__((aligned(8), unused));\n"
            "#define HWP_SCRATCH(offset) ((int16_t *)(void *)(hwp_arena + (offset)))\n"
            "#else\n"
            f"static int8_t hwp_arena[{max(plan.nbytes, 1)}] __attribute__((aligned(8), unused));\n"
            "#define HWP_SCRATCH(offset) ((int16_t *)0)\n"
            "#endif\n"
            + functions
            + f"void {graph.name}_predict(const int8_t *in, int8_t *out) {{\n    {body}\n"
            + ("" if writes_output(graph, graph.layers[-1]) else
               f"    for (int k = 0; k < {int(np.prod(graph.output_shape))}; k++) out[k] = {where[graph.output]}[k];\n")
            + "}\n")


def write_int8_c(graph: Graph, out_dir: Path, wide: bool = False) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SOURCE).write_text(render_int8(graph, wide))
    for header in HEADERS:
        shutil.copyfile(templates_dir() / "c" / header, out_dir / header)
    return [out_dir / SOURCE, *(out_dir / header for header in HEADERS)]

