"""children.run with ``on_line``: a long tool's output seen line by line as it comes (the
place-and-route progress display), kept whole, and the tool gone on a timeout."""

import subprocess
import sys
import time

import pytest

from hwprune import children
from hwprune.fpga.pnr_log import phase_of

TICKS = "import sys, time\nfor i in range(4):\n    print(f'tick {i}', flush=True)\n    print(f'err {i}', file=sys.stderr, flush=True)\n    time.sleep(0.3)\n"


def test_lines_arrive_while_the_tool_runs_and_its_output_is_kept():
    seen = []
    start = time.monotonic()
    done = children.run([sys.executable, "-c", TICKS], timeout=60,
                        on_line=lambda line: seen.append((line, time.monotonic() - start)))
    assert done.returncode == 0
    assert done.stdout == "".join(f"tick {i}\n" for i in range(4))
    assert done.stderr == "".join(f"err {i}\n" for i in range(4))
    assert [l for l, _ in seen if l.startswith("tick")] == [f"tick {i}" for i in range(4)]
    assert sorted(l for l, _ in seen) == sorted([f"tick {i}" for i in range(4)] + [f"err {i}" for i in range(4)])
    first = next(t for l, t in seen if l == "tick 0")
    last = next(t for l, t in seen if l == "tick 3")
    assert last - first > 0.6  # handed over as written, not all at the end


def test_a_streamed_tool_past_its_timeout_is_stopped():
    seen = []
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        children.run([sys.executable, "-c", "import time\nprint('started', flush=True)\ntime.sleep(60)\n"],
                     timeout=1.5, on_line=seen.append)
    assert time.monotonic() - start < 20
    assert seen == ["started"]


@pytest.mark.parametrize("line, phase", [
    ("Info: Packing IOs..", "packing"),
    ("Info: Creating initial analytic placement for 1943 cells, random placement wirelen = 335853.", "placing"),
    ("Info:     at iteration #3, type ALL: wirelen solved = 4406, spread = 28701, legal = 30039; time = 0.12s",
     "placing, pass 3"),
    ("Info: Running simulated annealing placer for refinement.", "refining the placement"),
    ("Info:   at iteration #15: temp = 0.000000, timing cost = 6676, wirelen = 957985",
     "refining the placement, pass 15"),
    ("Info: Running router2...", "routing"),
    ("Info:     iter=2 wires=1031506 overused=81973 overuse=93630 archfail=NA", "routing, pass 2, 81,973 wires overused"),
    ("Info: Routing complete.", "routed; timing"),
    ("Info: Max frequency for clock 'clk': 123.32 MHz (PASS at 100.00 MHz)", None),
])
def test_nextpnr_log_lines_name_their_phase(line, phase):
    assert phase_of(line) == phase


class Enough(Exception):
    pass


def test_poll_stops_a_silent_tool_and_its_exception_propagates():
    """A budget the caller keeps (place-and-route's --route-timeout): ``poll`` runs while the
    tool prints nothing, and what it raises ends the tool."""
    import os

    seen, polls = [], []
    start = time.monotonic()

    def poll():
        polls.append(time.monotonic())
        if seen and time.monotonic() - start > 1.0:
            raise Enough

    with pytest.raises(Enough):
        children.run([sys.executable, "-c", "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(60)\n"],
                     timeout=120, on_line=seen.append, poll=poll)
    assert time.monotonic() - start < 20
    assert len(polls) >= 2  # called again while no line came
    with pytest.raises(ProcessLookupError):
        os.kill(int(seen[0]), 0)
