"""The placed design's figures read from nextpnr's log when --route-timeout stops its router
(lines as nextpnr-ecp5 0.11 writes them)."""

import pytest

from hwprune.errors import ToolchainError
from hwprune.fpga.pnr_log import placed_report

LOG = """Info: Logic utilisation before packing:
Info:     Total LUT4s:     61522/83640    73%
Info:      Total DFFs:     32949/83640    39%

Info: Packing IOs..
Info: Device utilisation:
Info: \t          TRELLIS_IO:       0/    365     0%
Info: \t          MULT18X18D:       2/    156     1%
Info: \t          TRELLIS_FF:   32949/  83640    39%
Info: \t        TRELLIS_COMB:   74760/  83640    89%

Info: Placed 0 cells based on constraints.
Info: Max frequency for clock 'clk': 63.95 MHz (FAIL at 100.00 MHz)
Info: Routing globals...
Info: Running router2...
"""


def test_the_device_table_and_the_placed_fmax_are_read():
    report = placed_report(LOG, "nextpnr")
    assert report["utilization"] == {"TRELLIS_IO": {"used": 0, "available": 365},
                                     "MULT18X18D": {"used": 2, "available": 156},
                                     "TRELLIS_FF": {"used": 32949, "available": 83640},
                                     "TRELLIS_COMB": {"used": 74760, "available": 83640}}
    assert report["fmax"] == {"clk": {"achieved": 63.95}}


def test_a_log_without_the_device_table_is_one_error():
    with pytest.raises(ToolchainError, match="no device utilisation"):
        placed_report(LOG.split("Info: Device utilisation:")[0], "nextpnr")


def test_the_budget_starts_with_routing_and_ends_when_it_is_complete():
    from hwprune.fpga.pnr_log import RouteBudget, RoutingStopped

    budget = RouteBudget(0)
    budget.on_line("Info: Running simulated annealing placer for refinement.")
    budget.poll()  # placing: the clock has not started
    with pytest.raises(RoutingStopped) as stopped:
        budget.on_line("Info: Routing globals...")
    assert "annealing" in stopped.value.log and "Routing globals" in stopped.value.log

    done = RouteBudget(3600)
    done.on_line("Info: Routing globals...")
    done.on_line("Info: Routing complete.")
    done.seconds = 0  # past the budget once routing completed: the timing analysis runs on
    done.poll()
    done.on_line("Info: Max frequency for clock 'clk': 123.32 MHz (PASS at 100.00 MHz)")
