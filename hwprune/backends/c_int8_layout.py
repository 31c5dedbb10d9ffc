"""The orders in which the int8 DSP kernels read their weights, arranged once at export:
row blocks for the dense multiply blocks, a dense convolution's records (its rows in fours,
then pairs, beside their requantization constants), four channels a tap for the depthwise
kernel, and filters padded with zero columns to whole words for ``hwp_conv_k4_s8``."""

from __future__ import annotations

import numpy as np


def block_rows(matrix: np.ndarray, rows: int) -> np.ndarray:
    """A weight matrix (n_rows, k) in the row-blocked order the kernels read
    (``hwp_row`` in hwprune_int8_simd.h): per block of ``rows`` rows, each group of four
    columns holds the block's rows one after the other, then the block's last k % 4 columns
    row by row; the rows after the last full block stay as they are."""
    matrix = np.asarray(matrix)
    n, k = matrix.shape
    full, k4 = n // rows * rows, k // 4 * 4
    parts = []
    for b in range(0, full, rows):
        block = matrix[b:b + rows]
        parts.append(block[:, :k4].reshape(rows, k4 // 4, 4).transpose(1, 0, 2).reshape(-1))
        parts.append(block[:, k4:].reshape(-1))
    parts.append(matrix[full:].reshape(-1))
    return np.concatenate(parts)


def _words(*values) -> np.ndarray:
    return np.asarray([int(v) for v in values], dtype="<i4").view(np.int8)


# a convolution with at least this many channels whose requantization is the folded form
# over all of int8 has its first channels in records of four (hwp_conv_quads); the same rule
# as HWP_CONV_QUADS in templates/c/hwprune_int8_quads.h
QUAD_MIN_CHANNELS = 4


def conv_quads(n: int, folded: bool) -> int:
    """How many records of four channels ``conv_records`` writes for ``n`` filters (``folded``:
    the layer's requantization is the folded form over all of int8, ``HWP_FOLDED``)."""
    return n // 4 if folded and n >= QUAD_MIN_CHANNELS else 0


def quad_rows(matrix: np.ndarray) -> np.ndarray:
    """Four filters (4, k) in the order ``hwp_conv_quads`` reads them: per group of four inputs
    k0..k3, four words: channels 0 and 1 at k0 and k2, channels 2 and 3 at k0 and k2, then the
    same at k1 and k3, each word (a's k_lo, b's k_lo, a's k_hi, b's k_hi), so that SXTB16 and
    SXTB16 of the word rotated by 8 give channel a's and channel b's (k0, k2) or (k1, k3)."""
    m = np.asarray(matrix).reshape(4, -1, 4)  # (channel, group, i)
    words = [m[[a, b]][:, :, [lo, hi]].transpose(1, 2, 0).reshape(-1, 4)
             for lo, hi in ((0, 2), (1, 3)) for a, b in ((0, 1), (2, 3))]
    return np.stack(words, axis=1).reshape(-1)


def quad_rows_wide(matrix: np.ndarray) -> np.ndarray:
    """``quad_rows`` widened (``HWP_QUAD_WIDE``): per group of four inputs eight int16 pairs,
    channels 0, 1, 2, 3 at (k0, k2), then at (k1, k3), as int8 bytes (little-endian)."""
    m = np.asarray(matrix).reshape(4, -1, 4)  # (channel, group, i)
    pairs = np.stack([m[:, :, [lo, hi]] for lo, hi in ((0, 2), (1, 3))], axis=1)  # (channel, step, group, 2)
    return pairs.transpose(2, 1, 0, 3).reshape(-1).astype("<i2").view(np.int8)


def conv_records(matrix: np.ndarray, bias, multiplier, shift, folded: bool, wide: bool = False) -> np.ndarray:
    """A dense convolution's filters (out, k), k a multiple of four, with their per-channel
    int32 constants, as the bytes ``hwp_conv_pairs`` reads (templates/c/hwprune_int8_pairs.h):
    first ``conv_quads(n, folded)`` records of four channels (their four biases, their rows in
    ``quad_rows``' order, or ``quad_rows_wide``'s with ``wide``, then multiplier and shift word
    channel by channel), then per pair of the other channels their two biases, their rows
    blocked by 2 (``block_rows``), their two multipliers and two shift words; an odd last
    channel's bias, multiplier, shift word and row."""
    matrix = np.asarray(matrix)
    n, k = matrix.shape
    if k % 4:
        raise ValueError(f"conv_records: {k} weights a filter, not a multiple of four")
    parts = []
    first = 4 * conv_quads(n, folded)
    for o in range(0, first, 4):
        rows = quad_rows_wide(matrix[o:o + 4]) if wide else quad_rows(matrix[o:o + 4]).astype(np.int8)
        parts += [_words(*bias[o:o + 4]), rows,
                  _words(*(v for j in range(o, o + 4) for v in (multiplier[j], shift[j])))]
    for o in range(first, n - 1, 2):
        parts += [_words(bias[o], bias[o + 1]), block_rows(matrix[o:o + 2], 2).astype(np.int8),
                  _words(multiplier[o], multiplier[o + 1], shift[o], shift[o + 1])]
    if (n - first) % 2:
        parts += [_words(bias[-1], multiplier[-1], shift[-1]), matrix[-1].astype(np.int8)]
    return np.concatenate(parts)


def depthwise_weights(weight: np.ndarray) -> np.ndarray:
    """Depthwise filters (c, kh, kw) in the order ``hwp_dwconv_s8`` reads them: per block of
    four channels, each tap's four weights as (w0, w2, w1, w3); then the last c % 4
    channels tap by tap (kh, kw, c)."""
    c = weight.shape[0]
    taps = weight.reshape(c, -1)
    c4 = c // 4 * 4
    blocks = taps[:c4].reshape(c4 // 4, 4, taps.shape[1])[:, [0, 2, 1, 3], :].transpose(0, 2, 1).reshape(-1)
    return np.concatenate([blocks, taps[c4:].T.reshape(-1)])

def k4_filters(weight: np.ndarray) -> np.ndarray:
    """Filters (out, kh, kw, cin) in the order ``hwp_conv_k4_s8`` reads them (``hwp_k4_index``
    in templates/c/hwprune_int8_simd.h): each kernel row's whole words of its kw * cin weights,
    row by row, then every row's last (kw * cin) % 4 weights, row by row, then zeros up to a
    multiple of four; as many as ``padded_filters`` gives the natural order."""
    out, kh, kw, cin = weight.shape
    rows = np.asarray(weight).reshape(out, kh, kw * cin)
    a4 = kw * cin // 4 * 4
    return padded_filters(np.concatenate([rows[:, :, :a4].reshape(out, -1), rows[:, :, a4:].reshape(out, -1)], axis=1))


def padded_filters(matrix: np.ndarray) -> np.ndarray:
    """A filter matrix (out, k) with zero columns appended up to the next multiple of four."""
    out, k = matrix.shape
    padded = np.zeros((out, (k + 3) // 4 * 4), dtype=matrix.dtype)
    padded[:, :k] = matrix
    return padded
