import os
import signal

import numpy as np
import pytest

# Training code in tests must not fight over the two cores of a CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# A suite started in the background of a non-interactive shell inherits SIGINT ignored, and
# so would every hwprune process it starts; the signal tests need Ctrl-C delivered.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.set_num_threads(1)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# The suite runs on every core (pytest-xdist, `-n auto` in pyproject.toml) with work
# stealing; a long test started last would leave the other cores idle at the end, so the
# modules that hold the longest tests (minutes: a whole sweep, the experiments, hls4ml
# builds, place-and-route) are collected first. Order within a module is kept.
_LONG_FIRST = (
    "tests/e2e/test_experiments_smoke.py",
    "tests/e2e/test_cli_sweep.py",
    "tests/e2e/test_cli_hls4ml.py",
    "tests/e2e/test_demo.py",
    "tests/e2e/test_cli_resources.py",
    "tests/e2e/test_cli_pnr.py",
    "tests/e2e/test_cli_precision.py",
    "tests/e2e/test_cli_torch_graphs.py",
    "tests/e2e/test_graph_engines.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::", 1)[0]
        return _LONG_FIRST.index(path) if path in _LONG_FIRST else len(_LONG_FIRST)

    items.sort(key=rank)
