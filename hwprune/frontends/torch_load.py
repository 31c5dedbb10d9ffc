"""Reading pickled torch models without running their code (and writing ones that read back).

``torch.load(weights_only=True)`` unpickles only tensors, containers and the classes of an
allow-list: here the torch.nn layers the frontends map (``SAFE_MODULES``). Anything else in
a pickle (a class of the user's script, or a payload such as ``os.system``) is refused with
a TrustError naming it; ``trust_model=True`` (``--trust-model``) is the only door to full
unpickling, and it warns.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path

from hwprune.errors import ModelError, TrustError


def _torch():
    import torch  # deferred: importing torch costs about a second

    return torch


#: The torch.nn classes a pickled model may hold when it is loaded safely: the layers the
#: frontends map to the IR (the Conv and pooling layers included, so that a model of
#: them is read as data and refused, or mapped, by ``from_torch``, never run).
SAFE_MODULES = (
    "Sequential", "Linear", "ReLU", "Flatten", "Identity", "Dropout", "Softmax", "LogSoftmax",
    "BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "Sigmoid", "Tanh", "SELU", "LeakyReLU", "PReLU", "Hardsigmoid", "SiLU",
    "ReLU6", "Hardtanh", "ZeroPad1d", "ZeroPad2d", "ConstantPad1d", "ConstantPad2d",
)
TRUST_HINT = "pass --trust-model (trust_model=True in Python) only if you trust the file's source"


class UnsafeLoadWarning(UserWarning):
    """A model file was unpickled with full trust: it could have run any code."""


def safe_classes() -> list:
    nn = _torch().nn
    return [getattr(nn, name) for name in SAFE_MODULES]


def _unsafe_globals(path: Path) -> list[str]:
    try:
        found = _torch().serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # an unreadable file is reported by the load itself
        return []
    allowed = {f"{c.__module__}.{c.__qualname__}" for c in safe_classes()}
    return [g for g in found if g not in allowed]


def load_torch_model(path: Path, trust_model: bool = False):
    """Read a pickled ``nn.Module`` (``torch.save(model)``) from ``path``.

    By default with ``torch.load(weights_only=True)`` and an allow-list of the torch.nn
    layers hwprune reads (``SAFE_MODULES``): nothing in the file runs. Anything else in
    the pickle is a TrustError naming it; ``trust_model`` unpickles everything (and warns).
    """
    torch = _torch()
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # source-changed warnings from old pickles
            if trust_model:
                obj = torch.load(path, map_location="cpu", weights_only=False)
            else:
                with torch.serialization.safe_globals(safe_classes()):
                    obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = _unsafe_globals(path) if not trust_model else []
        unsafe = unsafe or re.findall(r"GLOBAL (\S+) was not an allowed global", str(exc))
        if unsafe and not trust_model:
            raise TrustError(f"{path}: holds {', '.join(unsafe[:3])}{' ...' if len(unsafe) > 3 else ''}, outside "
                             f"hwprune's allow-list of torch.nn layers: loading it could run code, so it was not "
                             f"loaded; {TRUST_HINT}") from None
        detail = _unpickler_reason(str(exc))
        if not trust_model and detail and "Unsupported operand" not in detail:
            raise TrustError(f"{path}: the safe loader cannot read it ({detail}); it may be an old or custom "
                             f"pickle; {TRUST_HINT}") from None
        raise ModelError(f"{path}: not a readable torch model file (UnpicklingError)") from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, AttributeError, ModuleNotFoundError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: not a readable torch model file ({type(exc).__name__}: {_first_line(exc)})") from None
    if trust_model:
        warnings.warn(UnsafeLoadWarning(f"{path} was unpickled with --trust-model: any code in it has run"),
                      stacklevel=2)
    if isinstance(obj, dict):
        raise ModelError(
            f"{path}: holds a state_dict, not a module; save the whole module with torch.save(model, path)"
        )
    if not isinstance(obj, torch.nn.Module):
        raise ModelError(f"{path}: holds a {type(obj).__name__}, not a torch.nn.Module")
    return obj


def _unpickler_reason(message: str) -> str:
    """The line of torch's weights-only message that says what failed."""
    tail = message.split("Unpickler error:", 1)
    if len(tail) < 2:
        return ""
    lines = [line.strip() for line in tail[1].splitlines() if line.strip()]
    return lines[0] if lines else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
