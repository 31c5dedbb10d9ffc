import subprocess
from pathlib import Path

import numpy as np
import pytest

from hwprune import reference
from hwprune.backends.c_int8 import write_int8_c
from hwprune.errors import ToolchainError
from hwprune.harness.compare import Comparison, compare
from hwprune.harness.cross import find_cross_cc
from hwprune.harness.host_int8 import run_host
from hwprune.harness.build import HOST_FLAGS, find_cc
from hwprune.harness.mcu_int8 import Int8McuRun, run_mcu
from hwprune.paths import templates_dir

DATA = Path(__file__).resolve().parents[1] / "data"
#: the host C with the DSP instructions written in C
PORTABLE = ("HWPRUNE_INT8_PORTABLE_SIMD",)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def differences(name: str, got: np.ndarray, want: np.ndarray) -> str:
    """How many integer outputs differ, and the first few as (index, got, want)."""
    bad = np.argwhere(got != want)
    return (f"{name}: {len(bad)} of {want.size} outputs differ; first (index, got, want): "
            f"{[(tuple(int(i) for i in b), int(got[tuple(b)]), int(want[tuple(b)])) for b in bad[:5]]}")


def host_comparisons(graph, x: np.ndarray, folder: Path, wide: bool = False) -> list[Comparison]:
    """``graph``'s int8 C written to ``folder/c`` (``wide``: int16 quad weights), built for the
    host with the DSP instructions written in C and with the scalar kernels, each compared with
    the reference on every layer."""
    write_int8_c(graph, folder / "c", wide)
    expected = reference.run(graph, x, trace=True)
    return [compare(expected, run_host(graph, folder / "c", x, folder, defines), f"host {defines}")
            for defines in (PORTABLE, ())]


def run_on_mcu(graph, x: np.ndarray, folder: Path, target: str = "stm32l4r5", cc=None, opt: str = "-O2",
               wide: bool = False, frame_pointer: bool = False) -> Int8McuRun:
    """``graph``'s int8 C written to ``folder/c`` (``wide``: int16 quad weights) and run on ``x``
    on ``target``'s core in the emulator (``harness.mcu_int8.run_mcu``), built by ``cc`` (default
    zig's clang) at ``opt`` (keeping a frame pointer with ``frame_pointer``); the test is
    skipped without that cross compiler."""
    try:
        find_cross_cc(cc)
    except ToolchainError as exc:
        pytest.skip(str(exc))
    write_int8_c(graph, folder / "c", wide)
    return run_mcu(graph, folder / "c", x, folder, target, cc=cc, opt=opt, frame_pointer=frame_pointer)


def host_printed(source: Path, defines=(), timeout: int = 120) -> np.ndarray:
    """The integers a C program ``source`` (which includes the int8 headers) prints, built for
    the host with ``defines``."""
    exe = source.with_name(f"{source.stem}{len(defines)}")
    subprocess.run([*find_cc().command, *HOST_FLAGS, *(f"-D{d}" for d in defines), "-I", str(templates_dir() / "c"),
                    "-o", str(exe), str(source)], check=True, capture_output=True, timeout=timeout)
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=True).stdout
    return np.array([int(v) for v in out.split()], dtype=np.int64)
