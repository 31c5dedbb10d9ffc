"""Formats for fast kernels: N:M groups (nm) and constant weights unrolled into code.

- ``nm``: every row is cut into groups of ``m`` inputs holding at most ``n`` nonzeros
  (2:4, 1:4 or 1:8, the sparsest pattern the mask satisfies, else the format does not
  apply). Each group stores exactly ``n`` values (0 where it has fewer nonzeros) and
  their position in the group in log2(m) bits, each row's slots starting on a byte: the
  kernel's loops have constant trip counts and no pointers. The pattern comes from N:M structured pruning (Mishra et al.,
  "Accelerating Sparse Deep Neural Networks", 2021).
- ``unrolled``: every nonzero becomes one multiply-accumulate with a constant weight and a
  constant input offset; no loop, no index load. Flash is instructions, estimated here
  (``UNROLLED_BYTES_PER_NONZERO``) from Thumb-2 builds: an input load and a
  multiply-accumulate with the weight in a register or an immediate.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

import numpy as np

from hwprune.backends.c import bitstream
from hwprune.backends.c.formats.core import (
    C_BYTES, EncodedArray, FormatNotApplicable, StorageFormat, _decode_csr, _encode_csr, register_format,
)

NM_PATTERNS = ((1, 8), (1, 4), (2, 4))  # sparsest first
NM_INDEX_BITS = {4: 2, 8: 3}
# Measured on Cortex-M4 builds (clang -O2) of 256x256 layers (benchmarks/kernels.py):
# .text of 66,658 B for 6,554 nonzeros and 256 rows, about 10 bytes per nonzero.
UNROLLED_BYTES_PER_NONZERO = 10
UNROLLED_BYTES_PER_ROW = 16
# Compile time grows with the statements: clang -O2 needs minutes for 30,000 of them.
UNROLLED_MAX_NONZEROS = 16384


def _groups(w: np.ndarray, m: int) -> np.ndarray:
    """``w`` padded with zero columns to whole groups: (out, groups, m)."""
    out, inputs = w.shape
    padded = np.zeros((out, -(-inputs // m) * m), dtype=np.int64)
    padded[:, :inputs] = w
    return padded.reshape(out, -1, m)


def nm_fits(w: np.ndarray, n: int, m: int) -> bool:
    return bool(np.all(np.count_nonzero(_groups(w, m), axis=2) <= n))


def _row_slot_bytes(inputs: int, n: int, m: int) -> int:
    """Each row's slots start on a byte: the kernel reads whole bytes of slots."""
    return -(-(-(-inputs // m) * n * NM_INDEX_BITS[m]) // 8)


def _nm_bytes(w: np.ndarray, n: int, m: int, value_c_type: str) -> int:
    entries = w.shape[0] * -(-w.shape[1] // m) * n
    return entries * C_BYTES[value_c_type] + w.shape[0] * _row_slot_bytes(w.shape[1], n, m) + 1


def _choose_nm(w: np.ndarray, value_c_type: str) -> dict[str, int]:
    fitting = [(n, m) for n, m in NM_PATTERNS if nm_fits(w, n, m)]
    if not fitting:
        raise FormatNotApplicable("the mask has no N:M structure (at most 2 nonzeros in every 4 inputs, "
                                  "1 in 4 or 1 in 8); prune with an N:M mask, or choose another format")
    n, m = min(fitting, key=lambda p: _nm_bytes(w, *p, value_c_type))
    return {"n": n, "m": m}


def _encode_nm(w: np.ndarray, value_c_type: str, n: int, m: int) -> tuple[EncodedArray, ...]:
    groups = _groups(w, m).reshape(-1, m)
    values = np.zeros((len(groups), n), dtype=np.int64)
    slots = np.zeros((len(groups), n), dtype=np.int64)
    for g, group in enumerate(groups):
        where = np.flatnonzero(group)  # ascending: input order within the row
        values[g, : where.size] = group[where]
        slots[g, : where.size] = where
    out = w.shape[0]
    rows = slots.reshape(out, -1)
    per_row = _row_slot_bytes(w.shape[1], n, m)
    stream = np.zeros(out * per_row + 1, dtype=np.int64)  # + the padding byte
    for j in range(out):
        stream[j * per_row : (j + 1) * per_row] = bitstream.pack_fields(rows[j], NM_INDEX_BITS[m])[:per_row]
    return (
        EncodedArray("values", "value", value_c_type, values.reshape(-1)),
        EncodedArray("slots", "index", "uint8_t", stream),
    )


def _decode_nm(arrays: Mapping[str, np.ndarray], shape, n: int, m: int) -> np.ndarray:
    out, inputs = shape
    groups = -(-inputs // m)
    values = np.asarray(arrays["values"]).reshape(out * groups, n)
    per_row = _row_slot_bytes(inputs, n, m)
    stream = np.asarray(arrays["slots"])
    slots = np.concatenate([
        bitstream.unpack_fields(stream[j * per_row : (j + 1) * per_row], NM_INDEX_BITS[m], groups * n)
        for j in range(out)
    ]).reshape(out * groups, n)
    w = np.zeros((out * groups, m), dtype=np.int64)
    for g in range(out * groups):
        for value, slot in zip(values[g], slots[g]):
            if value:
                w[g, slot] = value
    return w.reshape(out, groups * m)[:, :inputs]


def _encode_unrolled(w: np.ndarray, value_c_type: str) -> tuple[EncodedArray, ...]:
    """csr's arrays, every one held as code: the kernel writes them into its instructions."""
    return tuple(replace(a, role="code") for a in _encode_csr(w, value_c_type))


def _check_unrolled(w: np.ndarray, value_c_type: str) -> dict[str, int]:
    nonzeros = int(np.count_nonzero(w))
    if nonzeros > UNROLLED_MAX_NONZEROS:
        raise FormatNotApplicable(f"{nonzeros} nonzero weights are too many to unroll (at most "
                                  f"{UNROLLED_MAX_NONZEROS}); choose csr")
    return {}


def _unrolled_code_bytes(w: np.ndarray) -> int:
    return UNROLLED_BYTES_PER_NONZERO * int(np.count_nonzero(w)) + UNROLLED_BYTES_PER_ROW * w.shape[0]


register_format(StorageFormat(
    "nm", _encode_nm, _decode_nm,
    "N:M groups (2:4, 1:4, 1:8): n values and their log2(m)-bit slots per group of m inputs",
    choose_params=_choose_nm,
))
register_format(StorageFormat(
    "unrolled", _encode_unrolled, _decode_csr,
    "constant weights in the instructions, one multiply-accumulate per nonzero: the fastest, flash permitting",
    choose_params=_check_unrolled, code_bytes=_unrolled_code_bytes,
))
