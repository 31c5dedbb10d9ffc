"""LSB-first bit streams in bytes: how the packed formats lay out masks, gaps and codes.

Bit ``p`` of a stream is bit ``p % 8`` of byte ``p // 8``. The C kernels read a field of
up to 9 bits at bit ``p`` from two consecutive bytes, so every stream carries one
trailing padding byte (counted in the format's bytes) and no read runs past the array.
"""

from __future__ import annotations

import numpy as np

MAX_FIELD_BITS = 9  # (p % 8) + 9 <= 16: a field never spans more than two bytes


def pack_fields(values: np.ndarray, width: int) -> np.ndarray:
    """Unsigned ``values`` of ``width`` bits each, concatenated; bytes (with the padding byte)."""
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    if values.size and (values.min() < 0 or values.max() >= 1 << width):
        raise ValueError(f"fields {values.min()}..{values.max()} do not fit {width} bits")
    bits = ((values[:, None] >> np.arange(width)) & 1).reshape(-1)
    return pack_bits(bits)


def unpack_fields(stream: np.ndarray, width: int, count: int) -> np.ndarray:
    bits = unpack_bits(stream, count * width).reshape(count, width)
    return (bits << np.arange(width)).sum(axis=1).astype(np.int64)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """A 0/1 sequence as bytes, LSB first, plus the padding byte."""
    bits = np.asarray(bits, dtype=np.uint8).reshape(-1)
    packed = np.packbits(bits, bitorder="little") if bits.size else np.zeros(0, dtype=np.uint8)
    return np.concatenate([packed, np.zeros(1, dtype=np.uint8)]).astype(np.int64)


def unpack_bits(stream: np.ndarray, count: int) -> np.ndarray:
    data = np.asarray(stream, dtype=np.uint8)
    return np.unpackbits(data, bitorder="little")[:count].astype(np.int64)


def rice_bits(gaps: np.ndarray, k: int) -> np.ndarray:
    """Golomb-Rice codes of ``gaps`` with parameter ``k``: ``gap >> k`` one-bits, a zero,
    then the low ``k`` bits of the gap, LSB first."""
    out = []
    for g in np.asarray(gaps, dtype=np.int64).reshape(-1).tolist():
        out.extend([1] * (g >> k))
        out.append(0)
        out.extend((g >> b) & 1 for b in range(k))
    return np.array(out, dtype=np.int64)


def rice_length(gaps: np.ndarray, k: int) -> int:
    gaps = np.asarray(gaps, dtype=np.int64)
    return int(np.sum(gaps >> k) + gaps.size * (k + 1))


def rice_decode(stream: np.ndarray, k: int, count: int) -> np.ndarray:
    bits = np.unpackbits(np.asarray(stream, dtype=np.uint8), bitorder="little").tolist()
    out, p = [], 0
    for _ in range(count):
        q = 0
        while bits[p]:
            q += 1
            p += 1
        p += 1
        r = sum(bits[p + b] << b for b in range(k))
        p += k
        out.append((q << k) | r)
    return np.array(out, dtype=np.int64)
