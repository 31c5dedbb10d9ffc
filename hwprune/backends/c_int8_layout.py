"""The orders in which the int8 DSP kernels read their weights, arranged once at export:
row blocks for the dense multiply blocks, a dense convolution's records (its rows in pairs
beside their requantization constants), four channels a tap for the depthwise kernel, and
filters padded with zero columns to whole words for ``hwp_conv_k4_s8``."""

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


def conv_records(matrix: np.ndarray, bias, multiplier, shift) -> np.ndarray:
    """A dense convolution's filters (out, k), k a multiple of four, with their per-channel
    int32 constants, as the bytes ``hwp_conv_pairs`` reads (templates/c/hwprune_int8_pairs.h):
    per pair of channels their two biases, their rows blocked by 2 (``block_rows``), their
    two multipliers and two shift words; an odd last channel's bias, multiplier, shift word
    and row."""
    matrix = np.asarray(matrix)
    n, k = matrix.shape
    if k % 4:
        raise ValueError(f"conv_records: {k} weights a filter, not a multiple of four")
    parts = []
    for o in range(0, n - 1, 2):
        parts += [_words(bias[o], bias[o + 1]), block_rows(matrix[o:o + 2], 2).astype(np.int8),
                  _words(multiplier[o], multiplier[o + 1], shift[o], shift[o + 1])]
    if n % 2:
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
