"""An int8 graph as CMSIS-NN calls, cross-built and run in hwprune's Cortex-M emulator.

``render_cmsis_nn`` writes one C file from the IR: every weight, bias, per-channel
multiplier and shift, zero point and activation clamp comes from the graph's layers, and
each computing layer becomes the CMSIS-NN call TFLM's CMSIS-NN kernels make for it
(``arm_fully_connected_s8``, ``arm_convolve_wrapper_s8``, ``arm_depthwise_conv_wrapper_s8``,
``arm_avgpool_s8``, ``arm_max_pool_s8``, ``arm_elementwise_add_s8``); RESHAPE and the
final SOFTMAX marker alias their input, as TFLM's in-place reshape does. Activations live
in one arena whose offsets a first-fit liveness planner chooses and then checks; the
kernels' scratch buffer is sized from CMSIS-NN's own rules for the DSP path and checked
against its ``*_get_buffer_size`` functions once, before the first inference.

``run_cmsis_nn`` links it with CMSIS-NN's sources through ``harness.cross.link_firmware``
(the firmware's flags and start-up; ``-mfloat-abi=hard -mfpu=fpv4-sp-d16`` on an M4F, and
``ARM_MATH_DSP`` from the core's ``__ARM_FEATURE_DSP``) and runs it with
``harness.emulator.emulate`` and the target core's cycle table, the path ``harness.mcu_int8``
runs hwprune's own int8 C on. CMSIS-NN (Apache-2.0) is not vendored: its folder comes from
``$CMSIS_NN_DIR`` (default ``../shared/third_party/cmsis-nn`` beside the repository).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from hwprune.errors import ModelError, ToolchainError
from hwprune.harness.cross import link_firmware
from hwprune.harness.cycles import FlashModel, get_cycle_table
from hwprune.harness.emulator import emulate
from hwprune.ir.graph import Graph
from hwprune.targets import get_target

LIBC = Path(__file__).resolve().parent / "c" / "libc"  # string.h for a freestanding build
ENV = "CMSIS_NN_DIR"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "third_party" / "cmsis-nn"
ALIASES = ("reshape", "softmax")  # no code: the tensor is its input's
# CMSIS-NN's sources outside the *s8* files that the s8 kernels call
EXTRA_SOURCES = ("NNSupportFunctions/arm_q7_to_q15_with_offset.c", "NNSupportFunctions/arm_nntables.c")


def cmsis_nn_dir(path=None) -> Path:
    """CMSIS-NN's source folder (``Include/``, ``Source/``); ToolchainError when absent."""
    folder = Path(path or os.environ.get(ENV, "") or DEFAULT_DIR)
    if not (folder / "Include" / "arm_nnfunctions.h").is_file():
        raise ToolchainError(f"CMSIS-NN's sources are not in {folder} (no Include/arm_nnfunctions.h); "
                             f"clone github.com/ARM-software/CMSIS-NN and set ${ENV}")
    return folder


def cmsis_nn_sources(folder: Path) -> list[Path]:
    """The int8 kernels and their helpers; the linker's --gc-sections drops what no layer calls."""
    found = [p for p in sorted((folder / "Source").rglob("*s8*.c"))
             if not any(t in p.name for t in ("_s4", "_f16", "_f32"))]
    return found + [folder / "Source" / s for s in EXTRA_SOURCES]


def _array(ctype: str, name: str, values) -> str:
    values = [int(v) for v in np.asarray(values).reshape(-1)] or [0]
    return f"static const {ctype} {name}[{len(values)}] = {{{','.join(map(str, values))}}};\n"


def _dims(shape) -> str:
    """cmsis_nn_dims {n, h, w, c} of a channels-last tensor without batch."""
    shape = tuple(int(s) for s in shape)
    h, w, c = (1, 1, *shape)[-3:] if len(shape) < 3 else shape
    return f"{{1, {h}, {w}, {c}}}"


def _aligned4(n: int) -> int:
    return (n + 3) // 4 * 4


def _scratch_bytes(layer, in_shape) -> int:
    """CMSIS-NN's buffer size on a DSP core without MVE built by clang (its ``*_get_buffer_size_dsp``)."""
    if layer.kind == "int8_conv2d":
        kh, kw = layer.weight.shape[1:3]
        pad = layer.padding[0][0] or layer.padding[1][0]
        cin = in_shape[-1]
        if layer.depthwise:
            if layer.out_channels != cin:
                return 0
            return 0 if (kh, kw) == (3, 3) and max(layer.padding[0][0], layer.padding[1][0]) <= 1 else cin * kh * kw * 2
        if (kh, kw) == (1, 1) and not pad:
            return 0  # arm_convolve_1x1_s8(_fast): no buffer unless built by Arm Compiler 6
        return 2 * _aligned4(kh * kw * cin) * 2
    if layer.kind == "int8_avgpool2d":
        return in_shape[-1] * 4
    return 0


def _source_tensor(graph: Graph, name: str) -> str:
    """The tensor that holds ``name``'s values: aliases followed back to a computed tensor or an input."""
    while True:
        producer = graph.producer(name)
        if producer is None or producer.kind not in ALIASES:
            return name
        name = producer.inputs[0]


def plan_arena(graph: Graph) -> tuple[dict[str, int], int]:
    """First-fit offsets of the computed tensors by liveness, largest first as TFLM's greedy
    planner places them (a tensor lives from its producer's step to its last reader's; the
    graph output to the end), then checked: no two tensors alive at one step share a byte.
    Returns (offsets, arena bytes)."""
    steps = [layer for layer in graph.layers if layer.kind not in ALIASES]
    index = {layer.name: i for i, layer in enumerate(steps)}
    live = {layer.name: [i, i] for i, layer in enumerate(steps)}
    for i, layer in enumerate(steps):
        for src in layer.inputs:
            src = _source_tensor(graph, src)
            if src in live:
                live[src][1] = max(live[src][1], i)
    out = _source_tensor(graph, graph.output)
    if out in live:
        live[out][1] = len(steps)
    size = {n: _aligned4(int(np.prod(graph.shape_of(n)))) for n in live}
    offsets: dict[str, int] = {}
    for name in sorted(live, key=lambda n: (-size[n], index[n])):
        taken = sorted((offsets[o], offsets[o] + size[o]) for o in offsets
                       if live[o][0] <= live[name][1] and live[name][0] <= live[o][1])
        at = 0
        for lo, hi in taken:
            if at + size[name] <= lo:
                break
            at = max(at, hi)
        offsets[name] = at
    names = list(offsets)
    for i, a in enumerate(names):  # the planner's own check
        for b in names[i + 1:]:
            overlap_t = live[a][0] <= live[b][1] and live[b][0] <= live[a][1]
            overlap_m = offsets[a] < offsets[b] + size[b] and offsets[b] < offsets[a] + size[a]
            if overlap_t and overlap_m:
                raise AssertionError(f"arena plan: live tensors {a!r} and {b!r} overlap")
    total = max((offsets[n] + size[n] for n in offsets), default=4)
    return offsets, total


@dataclass(frozen=True)
class CmsisNnC:
    source: str
    arena_bytes: int
    scratch_bytes: int


def render_cmsis_nn(graph: Graph) -> CmsisNnC:
    """The C of ``graph``: ``int <name>_cmsis_predict(const int8_t *in, int8_t *out)``
    (0, or the first CMSIS-NN status that is not ARM_CMSIS_NN_SUCCESS) and
    ``int <name>_cmsis_check_scratch(void)`` (0 when every layer's buffer fits)."""
    offsets, arena = plan_arena(graph)
    graph_input = graph.input.name

    def ptr(name: str) -> str:
        src = _source_tensor(graph, name)
        return "in" if src == graph_input else f"(arena + {offsets[src]})"

    data, calls, checks = [], [], []
    scratch = 0
    for i, layer in enumerate(graph.layers):
        if layer.kind in ALIASES:
            continue
        p = f"l{i}"
        out_shape = graph.shape_of(layer.name)
        in_shapes = graph.input_shapes(layer)
        in_types = graph.input_types(layer)
        src, dst = ptr(layer.inputs[0]), f"(arena + {offsets[layer.name]})"
        act = f"{{{layer.act_min}, {layer.act_max}}}"
        scratch = max(scratch, _scratch_bytes(layer, in_shapes[0]))
        if layer.kind in ("int8_dense", "int8_conv2d"):
            w = layer.weight.astype(np.int64)
            if layer.kind == "int8_conv2d" and layer.depthwise:
                w = np.moveaxis(w[..., 0], 0, -1)  # (out, kh, kw, 1) -> CMSIS-NN's (1, kh, kw, out)
            data += [_array("int8_t", f"{p}_w", w), _array("int32_t", f"{p}_b", layer.bias),
                     _array("int32_t", f"{p}_m", layer.out_multiplier), _array("int32_t", f"{p}_s", layer.out_shift)]
            in_off, out_off = -in_types[0].zero_point, layer.result_t.zero_point
            io = (f"&{p}_in, {src}, &{p}_f, {p}_w, &{p}_bd, {p}_b, &{p}_out, {dst}")
            head = (f"const cmsis_nn_dims {p}_in = {_dims(in_shapes[0])}, {p}_out = {_dims(out_shape)}, "
                    f"{p}_bd = {{1, 1, 1, {layer.weight.shape[0]}}}")
            if layer.kind == "int8_dense":
                n_in = int(np.prod(in_shapes[0]))
                head += f", {p}_f = {{{n_in}, 1, 1, {layer.out_features}}};"
                fc = f"const cmsis_nn_fc_params {p}_p = {{{in_off}, 0, {out_off}, {act}}};"
                m, e = layer.out_multiplier, layer.out_shift
                if np.all(m == m[0]) and np.all(e == e[0]):  # per-tensor, as TFLite's FULLY_CONNECTED is
                    q = (f"const cmsis_nn_per_tensor_quant_params {p}_q = {{{int(layer.out_multiplier[0])}, "
                         f"{int(layer.out_shift[0])}}};")
                    call = f"arm_fully_connected_s8(&ctx, &{p}_p, &{p}_q, {io})"
                else:
                    q = f"const cmsis_nn_per_channel_quant_params {p}_q = {{(int32_t *){p}_m, (int32_t *){p}_s}};"
                    call = f"arm_fully_connected_per_channel_s8(&ctx, &{p}_p, &{p}_q, {io})"
                calls.append(f"{{ {head} {fc} {q}\n      STEP({call}); }}")
                continue
            kh, kw = layer.weight.shape[1:3]
            q = f"const cmsis_nn_per_channel_quant_params {p}_q = {{(int32_t *){p}_m, (int32_t *){p}_s}};"
            geo = (f"{{{layer.stride[1]}, {layer.stride[0]}}}, {{{layer.padding[1][0]}, {layer.padding[0][0]}}}, "
                   f"{{1, 1}}, {act}")  # cmsis_nn_tile is {w, h}
            if layer.depthwise:
                mult = layer.out_channels // in_shapes[0][-1]
                head += f", {p}_f = {{1, {kh}, {kw}, {layer.out_channels}}};"
                params = f"const cmsis_nn_dw_conv_params {p}_p = {{{in_off}, {out_off}, {mult}, {geo}}};"
                fn, size_fn = "arm_depthwise_conv_wrapper_s8", "arm_depthwise_conv_wrapper_s8_get_buffer_size"
            else:
                head += f", {p}_f = {{{layer.out_channels}, {kh}, {kw}, {layer.weight.shape[3]}}};"
                params = f"const cmsis_nn_conv_params {p}_p = {{{in_off}, {out_off}, {geo}}};"
                fn, size_fn = "arm_convolve_wrapper_s8", "arm_convolve_wrapper_s8_get_buffer_size"
            calls.append(f"{{ {head} {params} {q}\n      STEP({fn}(&ctx, &{p}_p, &{p}_q, {io})); }}")
            checks.append(f"{{ {head} {params}\n      if ({size_fn}(&{p}_p, &{p}_in, &{p}_f, &{p}_out) > "
                          f"(int32_t)sizeof scratch) return {i + 1}; }}")
        elif layer.kind in ("int8_avgpool2d", "int8_maxpool2d"):
            (kh, kw) = layer.pool_size
            head = (f"const cmsis_nn_dims {p}_in = {_dims(in_shapes[0])}, {p}_out = {_dims(out_shape)}, "
                    f"{p}_f = {{1, {kh}, {kw}, 1}};")
            params = (f"const cmsis_nn_pool_params {p}_p = {{{{{layer.stride[1]}, {layer.stride[0]}}}, "
                      f"{{{layer.padding[1][0]}, {layer.padding[0][0]}}}, {act}}};")
            fn = "arm_avgpool_s8" if layer.kind == "int8_avgpool2d" else "arm_max_pool_s8"
            call = f"{fn}(&ctx, &{p}_p, &{p}_in, {src}, &{p}_f, &{p}_out, {dst})"
            calls.append(f"{{ {head} {params}\n      STEP({call}); }}")
            if fn == "arm_avgpool_s8":
                checks.append(f"if (arm_avgpool_s8_get_buffer_size({out_shape[1]}, {out_shape[2]}) > "
                              f"(int32_t)sizeof scratch) return {i + 1};")
        elif layer.kind == "int8_add":
            a, b = in_types
            calls.append(f"STEP(arm_elementwise_add_s8({src}, {ptr(layer.inputs[1])}, {-a.zero_point}, "
                         f"{layer.in1_multiplier}, {layer.in1_shift}, {-b.zero_point}, {layer.in2_multiplier}, "
                         f"{layer.in2_shift}, {layer.left_shift}, {dst}, {layer.result_t.zero_point}, "
                         f"{layer.out_multiplier}, {layer.out_shift}, {layer.act_min}, {layer.act_max}, "
                         f"{int(np.prod(out_shape))}));")
        else:
            raise ModelError(f"layer {layer.name!r}: no CMSIS-NN call for layer kind {layer.kind!r}")
    out_size = int(np.prod(graph.output_shape))
    scratch_words = max(1, (scratch + 3) // 4)
    body = "\n    ".join(calls)
    check_body = "\n    ".join(checks)
    source = (
        f"/* {graph.name}: TFLite int8 as CMSIS-NN calls, generated by hwprune's benchmarks */\n"
        "#include <stdint.h>\n#include <string.h>\n#include \"arm_nnfunctions.h\"\n"
        + "".join(data)
        + f"static int8_t arena[{arena}] __attribute__((aligned(4)));\n"
        f"static int32_t scratch[{scratch_words}];\n"
        "#define STEP(call) do { arm_cmsis_nn_status s_ = (call); \\\n"
        "    if (s_ != ARM_CMSIS_NN_SUCCESS) return 100 + (int)s_; } while (0)\n"
        f"int {graph.name}_cmsis_predict(const int8_t *in, int8_t *out);\n"
        f"int {graph.name}_cmsis_check_scratch(void);\n"
        f"int {graph.name}_cmsis_predict(const int8_t *in, int8_t *out) {{\n"
        f"    const cmsis_nn_context ctx = {{{'scratch' if scratch else 'NULL'}, {scratch}}};\n    {body}\n"
        f"    memcpy(out, {ptr(graph.output)}, {out_size});\n    return 0;\n}}\n"
        f"int {graph.name}_cmsis_check_scratch(void) {{\n    {check_body}\n    return 0;\n}}\n")
    return CmsisNnC(source, arena, scratch)


HARNESS = """#include <stdint.h>
#define HWPRUNE_IO __attribute__((section(".hwprune_io"), used))
int %(name)s_cmsis_predict(const int8_t *in, int8_t *out);
int %(name)s_cmsis_check_scratch(void);
HWPRUNE_IO int8_t hwprune_mcu_input[%(in_size)d];
HWPRUNE_IO int8_t hwprune_mcu_output[%(out_size)d];
static int scratch_status;
__attribute__((noinline, used)) int hwprune_mcu_infer(void);
__attribute__((noinline, used)) void hwprune_mcu_init(void);
/* Once, before the first inference: the FPU enabled (CPACR CP10, CP11) as an M4F's start-up
 * does, and each layer's CMSIS-NN buffer size checked against the planned scratch buffer. */
void hwprune_mcu_init(void) {
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    scratch_status = %(name)s_cmsis_check_scratch();
}
int hwprune_mcu_infer(void) {
    if (scratch_status) return 1000 + scratch_status;
    return %(name)s_cmsis_predict(hwprune_mcu_input, hwprune_mcu_output);
}
int main(void) { hwprune_mcu_init(); return hwprune_mcu_infer(); }
"""


@dataclass(frozen=True)
class CmsisNnRun:
    outputs: np.ndarray  # (vectors, *output_shape) int64
    cycles: float  # per inference, mean
    instructions: float
    flash_bytes: int
    static_ram_bytes: int
    stack_bytes: int
    arena_bytes: int
    scratch_bytes: int
    flash_stall_cycles: tuple = (0.0, 0.0)  # per inference, mean: instruction-, data-side (with a FlashModel)


def run_cmsis_nn(graph: Graph, x_int: np.ndarray, work: Path, target: str = "stm32l4r5",
                 cmsis_dir: Optional[Path] = None, flash: Optional[FlashModel] = None) -> CmsisNnRun:
    """``graph`` as CMSIS-NN calls on ``target``'s core in the emulator, over ``x_int`` (vectors, *input_shape);
    ``flash``: the chip's flash wait states added to the cycles (off by default)."""
    folder = cmsis_nn_dir(cmsis_dir)
    chosen = get_target(target)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    rendered = render_cmsis_nn(graph)
    model_c, harness_c = work / "model_cmsis_nn.c", work / "harness_cmsis_nn.c"
    model_c.write_text(rendered.source)
    out_size = int(np.prod(graph.output_shape))
    harness_c.write_text(HARNESS % {"name": graph.name, "in_size": int(np.prod(graph.input_shape)),
                                    "out_size": out_size})
    sources = cmsis_nn_sources(folder)
    fw = link_firmware([model_c, harness_c, *sources], [folder / "Include", LIBC], chosen.cpu, opt="-O2", fpu=True,
                       strict=False, depends=[*sorted((folder / "Include").rglob("*.h")), LIBC / "string.h"])
    x = np.asarray(x_int, dtype=np.int64).reshape(len(x_int), -1)
    emulation = emulate(fw, x, "int8_t", "int8_t", out_size, [], get_cycle_table(chosen.cpu), flash=flash)
    stalls = (0.0, 0.0) if emulation.flash_stalls is None else tuple(float(v) for v in emulation.flash_stalls.mean(axis=0))
    return CmsisNnRun(emulation.outputs.reshape(len(x), *graph.output_shape),
                      float(emulation.cycles.sum(axis=1).mean()), float(emulation.instructions.sum(axis=1).mean()),
                      fw.flash_bytes, fw.static_ram_bytes, emulation.stack_bytes, rendered.arena_bytes,
                      rendered.scratch_bytes, stalls)
