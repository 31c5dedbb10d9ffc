"""Build, run, compare and measure exported models against the integer reference."""

from hwprune.harness.compare import Comparison, Mismatch, compare
from hwprune.harness.engines import ENGINES, Engine, EngineRun, HostCEngine, ReferenceEngine, get_engine, register_engine
from hwprune.harness.measure import Footprint, measure_export
from hwprune.harness.verify import VerifyResult, verify
from hwprune.harness import hls4ml_engine  # noqa: F401  registers the "hls4ml" engine
from hwprune.harness import verilator_engine  # noqa: F401  registers the "verilator" engine

__all__ = [
    "Comparison", "Mismatch", "compare", "ENGINES", "Engine", "EngineRun", "HostCEngine", "ReferenceEngine",
    "get_engine", "register_engine", "Footprint", "measure_export", "VerifyResult", "verify",
]

# Engines that register themselves (the Cortex-M emulator).
from hwprune.harness import mcu as _mcu  # noqa: E402,F401
from hwprune.harness import tflm as _tflm  # noqa: E402,F401
