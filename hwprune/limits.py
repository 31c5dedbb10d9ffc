"""The memory budget for what a model file declares, checked before anything is allocated.

A model file states the shapes of its tensors; a few bytes can declare terabytes (an HDF5
dataset whose chunks were never written, an ONNX initializer with huge dims). Models for
microcontrollers and FPGAs are small, so every declared tensor, and a model's sum of them,
must fit ``memory_budget()`` bytes (1 GiB; ``HWPRUNE_MEMORY_BUDGET_MB`` raises or lowers it).
"""

from __future__ import annotations

import math
import os

from hwprune.errors import ModelError, OptionError

BUDGET_ENV = "HWPRUNE_MEMORY_BUDGET_MB"
DEFAULT_BUDGET_MB = 1024


def memory_budget() -> int:
    """The budget in bytes."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if not text:
        return DEFAULT_BUDGET_MB * 2**20
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = math.nan
    if not math.isfinite(megabytes) or megabytes <= 0:
        raise OptionError(f"${BUDGET_ENV} is {text!r}; expected a positive number of MiB")
    return int(megabytes * 2**20)


def declared_bytes(shape, itemsize: int) -> int:
    """The bytes a tensor of ``shape`` declares (Python integers: no overflow)."""
    return math.prod(int(d) for d in shape) * int(itemsize)


def check_declared(nbytes: int, what: str) -> None:
    """A ModelError when ``nbytes`` (declared by ``what``) exceed the budget."""
    budget = memory_budget()
    if nbytes > budget:
        raise ModelError(f"{what} declares {_size(nbytes)}, more than the memory budget of {_size(budget)}; "
                         f"refused before allocating (set ${BUDGET_ENV} to raise the budget)")


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def check_activations(graph, where: str) -> None:
    """Every value a graph computes for one example (its input, each layer's padded input and
    output, as float64) within the budget: a few bytes of padding or input shape can declare
    gigabytes that the reference would allocate for the first vector."""
    shape = tuple(graph.input_shape)
    check_declared(declared_bytes(shape, 8), f"{where}: the input of shape {shape} (one example)")
    for layer, out in ((layer, graph.shape_of(layer.name)) for layer in graph.layers):
        padding = getattr(layer, "padding", None)
        if padding and len(shape) == len(padding) + 1:
            padded = tuple(n + before + after for n, (before, after) in zip(shape[:-1], padding)) + shape[-1:]
            check_declared(declared_bytes(padded, 8), f"{where}: layer {layer.name!r}: its padded input of shape "
                                                      f"{padded} (one example)")
        check_declared(declared_bytes(out, 8), f"{where}: layer {layer.name!r}: its output of shape {tuple(out)} "
                                               "(one example)")
        shape = tuple(out)
