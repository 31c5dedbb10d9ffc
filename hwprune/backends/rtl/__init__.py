"""The RTL backend: a quantized graph -> one pipelined Verilog module (da4ml adder graphs)
whose simulation equals the integer reference bit for bit (``export_rtl``);
``harness/verilator_engine.py`` simulates it, ``fpga/pnr.py`` places and routes it (both
read its ``rtl.json`` with ``exportdir.read_rtl_summary``)."""

from hwprune.backends.rtl.project import RTL_DIR, RtlOptions, export_rtl
from hwprune.backends.rtl.trace import Port, check_supported

__all__ = ["RTL_DIR", "RtlOptions", "export_rtl", "Port", "check_supported"]
