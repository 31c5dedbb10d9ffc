"""FPGA resources before synthesis (``estimate``), and ground truth from open tools
(``synth``: da4ml RTL mapped by yosys ``synth_xilinx``, checked against the reference)."""

from hwprune.fpga import merge, spatial  # noqa: F401  (register the merge, conv and pooling rules)
from hwprune.fpga.estimate import RULES, STRATEGIES, Estimate, LayerResources, Options, estimate

__all__ = ["RULES", "STRATEGIES", "Estimate", "LayerResources", "Options", "estimate"]
