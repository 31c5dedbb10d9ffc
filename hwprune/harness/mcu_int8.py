"""The int8 dialect's C (``backends.c_int8``) on a Cortex-M core in the emulator.

The firmware is ``model_int8.c`` with a harness of its own (int8 input and output buffers
in ``.hwprune_io``, ``hwprune_mcu_infer`` calling ``<name>_predict``), linked and run like
the ap_fixed exports (``harness.cross``, ``harness.emulator``); cycles come from the
target core's cycle table, per layer (each layer is a function of its own in
``model_int8.c``) as well as in total.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from hwprune.backends.c_int8 import HEADERS, layer_function
from hwprune.harness.cross import find_cross_cc, link_firmware
from hwprune.harness.cycles import FlashModel, get_cycle_table
from hwprune.harness.emulator import emulate
from hwprune.ir.graph import Graph
from hwprune.targets import Target, get_target

HARNESS = """#include <stdint.h>
#define HWPRUNE_IO __attribute__((section(".hwprune_io"), used))
void %(name)s_predict(const int8_t *in, int8_t *out);
HWPRUNE_IO int8_t hwprune_mcu_input[%(in_size)d];
HWPRUNE_IO int8_t hwprune_mcu_output[%(out_size)d];
__attribute__((noinline, used)) int hwprune_mcu_infer(void);
int hwprune_mcu_infer(void) { %(name)s_predict(hwprune_mcu_input, hwprune_mcu_output); return 0; }
int main(void) { return hwprune_mcu_infer(); }
"""


# The traced build: one translation unit holding the model, whose trace hook appends every
# layer's output to the output buffer (a byte loop through a volatile pointer: no memcpy,
# which freestanding firmware has no library for).
TRACED_HARNESS = """#include <stdint.h>
#define HWPRUNE_IO __attribute__((section(".hwprune_io"), used))
HWPRUNE_IO int8_t hwprune_mcu_input[%(in_size)d];
HWPRUNE_IO int8_t hwprune_mcu_output[%(trace_size)d];
static unsigned hwp_trace_at;
static void hwp_trace(const int8_t *data, unsigned size) {
    volatile int8_t *dst = hwprune_mcu_output + hwp_trace_at;
    for (unsigned i = 0; i < size; i++) dst[i] = data[i];
    hwp_trace_at += size;
}
#define HWPRUNE_INT8_TRACE(index, data, size) hwp_trace((data), (size))
#include "model_int8.c"
static int8_t hwp_y[%(out_size)d];
__attribute__((noinline, used)) int hwprune_mcu_infer(void);
int hwprune_mcu_infer(void) { hwp_trace_at = 0; %(name)s_predict(hwprune_mcu_input, hwp_y); return 0; }
int main(void) { return hwprune_mcu_infer(); }
"""


def _target(target: Union[str, Target]) -> Target:
    return target if isinstance(target, Target) else get_target(target)


def _link(sources: list, c_dir: Path, target: Target, cc: Optional[str], opt: str = "-O2",
          frame_pointer: bool = False):
    """``sources`` with ``c_dir``'s headers (and model_int8.c) as inputs of the cached build."""
    return link_firmware(sources, [c_dir], target.cpu, opt=opt, compiler=None if cc is None else find_cross_cc(cc),
                         depends=[c_dir / "model_int8.c", *(c_dir / h for h in HEADERS)], frame_pointer=frame_pointer)


@dataclass(frozen=True)
class Int8McuRun:
    outputs: np.ndarray  # (vectors, *output_shape) int64
    cycles: float  # per inference, mean
    instructions: float
    flash_bytes: int
    static_ram_bytes: int
    stack_bytes: int
    # per inference, mean: each layer's function (layer order), then <name>_predict's own
    # code, then the harness; they sum to ``cycles`` / ``instructions``
    layer_cycles: np.ndarray
    layer_instructions: np.ndarray
    flash_stall_cycles: tuple = (0.0, 0.0)  # per inference, mean: instruction-, data-side (with a FlashModel)


def run_mcu(graph: Graph, c_dir: Path, x_int: np.ndarray, work: Path, target: Union[str, Target] = "stm32l4r5",
            flash: Optional[FlashModel] = None, cc: Optional[str] = None, progress: bool = False,
            opt: str = "-O2", frame_pointer: bool = False) -> Int8McuRun:
    """``target``: a target name or a Target (a target file's); ``flash``: the chip's flash wait
    states added to the cycles (``cycles.FlashModel``; off by default); ``cc``: the cross
    compiler (``harness.cross.find_cross_cc``; default clang from ziglang); ``progress``: a
    bar over the vectors on a terminal; ``opt``: the optimization level (``cross.OPT_LEVELS``;
    the written-out assembly needs an optimized build, an unoptimized one runs the C loops);
    ``frame_pointer``: a build that keeps one in r7 (``cross.link_firmware``)."""
    chosen = _target(target)
    harness = Path(work) / "harness_int8.c"
    harness.write_text(HARNESS % {"name": graph.name, "in_size": int(np.prod(graph.input_shape)),
                                  "out_size": int(np.prod(graph.output_shape))})
    c_dir = Path(c_dir)
    fw = _link([c_dir / "model_int8.c", harness], c_dir, chosen, cc, opt, frame_pointer)
    x = np.asarray(x_int, dtype=np.int64).reshape(len(x_int), -1)
    # a compiler may clone a function under a suffixed name (gcc's ``.constprop.0``)
    symbol = {fn.name.split(".")[0]: fn.name for fn in fw.functions}
    names = [symbol.get(layer_function(i)) for i in range(len(graph.layers))] + [f"{graph.name}_predict"]
    emulation = emulate(fw, x, "int8_t", "int8_t", int(np.prod(graph.output_shape)), names,
                        get_cycle_table(chosen.cpu), flash=flash, progress=progress)
    stalls = (0.0, 0.0) if emulation.flash_stalls is None else tuple(float(v) for v in emulation.flash_stalls.mean(axis=0))
    return Int8McuRun(emulation.outputs.reshape(len(x), *graph.output_shape), float(emulation.cycles.sum(axis=1).mean()),
                      float(emulation.instructions.sum(axis=1).mean()), fw.flash_bytes, fw.static_ram_bytes,
                      emulation.stack_bytes, emulation.cycles.mean(axis=0), emulation.instructions.mean(axis=0), stalls)


def trace_mcu(graph: Graph, c_dir: Path, x_int: np.ndarray, work: Path, target: Union[str, Target] = "stm32l4r5",
              cc: Optional[str] = None) -> list[tuple[str, np.ndarray]]:
    """Every layer's outputs on ``target``'s core (a build whose trace hook copies each layer's
    output out), as ``(layer name, (vectors, *shape))``: where a mismatch of the firmware begins."""
    chosen = _target(target)
    shapes = [graph.shape_of(layer.name) for layer in graph.layers]
    sizes = [int(np.prod(shape)) for shape in shapes]
    harness = Path(work) / "harness_int8_traced.c"
    harness.write_text(TRACED_HARNESS % {"name": graph.name, "in_size": int(np.prod(graph.input_shape)),
                                         "out_size": int(np.prod(graph.output_shape)), "trace_size": sum(sizes)})
    c_dir = Path(c_dir)
    fw = _link([harness], c_dir, chosen, cc)  # the harness includes model_int8.c
    x = np.asarray(x_int, dtype=np.int64).reshape(len(x_int), -1)
    emulation = emulate(fw, x, "int8_t", "int8_t", sum(sizes), [f"{graph.name}_predict"], get_cycle_table(chosen.cpu),
                        count=False)
    flat = emulation.outputs.reshape(len(x), sum(sizes))
    ends = np.cumsum(sizes)
    return [(layer.name, flat[:, end - size:end].reshape(len(x), *shape))
            for layer, shape, size, end in zip(graph.layers, shapes, sizes, ends)]
