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
