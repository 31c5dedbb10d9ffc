"""Mask formats near the entropy bound: bitmask, relative gaps (rel), Golomb-Rice gaps (rice).

Each stores the nonzero values in row-major order (input order within a row, which the
general arithmetic path needs) and a bit stream that says where they are in the
flattened ``(out, in)`` matrix, so an empty row costs nothing and no row carries a pointer:

- ``bitmask``: one bit per weight. ``2`` bits per nonzero at 50 % sparsity: the bound.
- ``rel``: per entry the gap (zeros skipped) in ``width`` bits, 2 to 7, chosen per layer
  for the fewest bytes; a longer gap inserts filler entries of value 0 (Han et al.,
  Deep Compression, ICLR 2016, Sec. 3). Fixed-width fields: a cheap decode.
- ``rice``: each gap Golomb-Rice coded with parameter ``k`` chosen per layer (the exact
  length is computed for every k). For gaps of an i.i.d. mask, geometrically distributed,
  this is within a few percent of log2 C(n, k) (Gallager & van Voorhis 1975).

See ``bitstream`` for the bit layout.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from hwprune.backends.c import bitstream
from hwprune.backends.c.formats.core import C_BYTES, EncodedArray, StorageFormat, register_format

REL_WIDTHS = range(2, 8)
RICE_PARAMETERS = range(0, 16)


def _positions(w: np.ndarray) -> np.ndarray:
    return np.flatnonzero(w.reshape(-1))


def _gaps(positions: np.ndarray) -> np.ndarray:
    """Zeros skipped before each nonzero, in the flattened matrix."""
    return np.diff(np.concatenate([[-1], positions])) - 1


def _scatter(shape, positions, values) -> np.ndarray:
    w = np.zeros(int(np.prod(shape)), dtype=np.int64)
    w[np.asarray(positions, dtype=np.int64)] = values
    return w.reshape(shape)


# -- bitmask ---------------------------------------------------------------------------------


def _encode_bitmask(w: np.ndarray, value_c_type: str) -> tuple[EncodedArray, ...]:
    flat = w.reshape(-1)
    return (
        EncodedArray("values", "value", value_c_type, flat[flat != 0]),
        EncodedArray("mask", "index", "uint8_t", bitstream.pack_bits(flat != 0)),
    )


def _decode_bitmask(arrays: Mapping[str, np.ndarray], shape) -> np.ndarray:
    bits = bitstream.unpack_bits(arrays["mask"], int(np.prod(shape)))
    return _scatter(shape, np.flatnonzero(bits), arrays["values"])


# -- rel -------------------------------------------------------------------------------------


def rel_entries(w: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(gap fields, values) with filler entries (value 0) where a gap exceeds ``width`` bits."""
    longest = (1 << width) - 1
    fields, values = [], []
    for gap, value in zip(_gaps(_positions(w)).tolist(), w.reshape(-1)[_positions(w)].tolist()):
        while gap > longest:
            fields.append(longest)
            values.append(0)
            gap -= longest + 1
        fields.append(gap)
        values.append(value)
    return np.array(fields, dtype=np.int64), np.array(values, dtype=np.int64)


def _rel_entry_count(gaps: np.ndarray, width: int) -> int:
    return int(gaps.size + np.sum(gaps // (1 << width)))


def _choose_rel(w: np.ndarray, value_c_type: str) -> dict[str, int]:
    gaps = _gaps(_positions(w))
    value_bytes = C_BYTES[value_c_type]
    cost = {}
    for b in REL_WIDTHS:
        entries = _rel_entry_count(gaps, b)
        cost[b] = entries * value_bytes + -(-entries * b // 8) + 1
    return {"width": min(cost, key=lambda b: (cost[b], b))}


def _encode_rel(w: np.ndarray, value_c_type: str, width: int) -> tuple[EncodedArray, ...]:
    fields, values = rel_entries(w, width)
    return (
        EncodedArray("values", "value", value_c_type, values),
        EncodedArray("gaps", "index", "uint8_t", bitstream.pack_fields(fields, width)),
    )


def _decode_rel(arrays: Mapping[str, np.ndarray], shape, width: int) -> np.ndarray:
    values = np.asarray(arrays["values"])
    fields = bitstream.unpack_fields(arrays["gaps"], width, values.size)
    positions = np.cumsum(fields + 1) - 1
    keep = values != 0
    return _scatter(shape, positions[keep], values[keep])


# -- rice ------------------------------------------------------------------------------------


def _choose_rice(w: np.ndarray, value_c_type: str) -> dict[str, int]:
    gaps = _gaps(_positions(w))
    lengths = {k: bitstream.rice_length(gaps, k) for k in RICE_PARAMETERS}
    return {"k": min(lengths, key=lambda k: (lengths[k], k))}


def _encode_rice(w: np.ndarray, value_c_type: str, k: int) -> tuple[EncodedArray, ...]:
    positions = _positions(w)
    return (
        EncodedArray("values", "value", value_c_type, w.reshape(-1)[positions]),
        EncodedArray("codes", "index", "uint8_t", bitstream.pack_bits(bitstream.rice_bits(_gaps(positions), k))),
    )


def _decode_rice(arrays: Mapping[str, np.ndarray], shape, k: int) -> np.ndarray:
    values = np.asarray(arrays["values"])
    gaps = bitstream.rice_decode(arrays["codes"], k, values.size)
    return _scatter(shape, np.cumsum(gaps + 1) - 1, values)


register_format(StorageFormat(
    "bitmask", _encode_bitmask, _decode_bitmask,
    "one bit per weight (row-major) and the nonzero values: the bound near 50 % sparsity",
))
register_format(StorageFormat(
    "rel", _encode_rel, _decode_rel,
    "per nonzero its gap in 2-7 bits (width per layer; filler entries of 0 for longer gaps) and its value",
    choose_params=_choose_rel,
))
register_format(StorageFormat(
    "rice", _encode_rice, _decode_rice,
    "Golomb-Rice coded gaps (parameter per layer) and the nonzero values: the fewest bytes at high sparsity",
    choose_params=_choose_rice,
))
