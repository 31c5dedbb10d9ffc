"""``csr8``: compressed rows without per-row pointers, for layers of at most 256 inputs.

Three byte streams, all in row order (input order within a row):

- ``values``: the nonzero weights;
- ``columns``: each nonzero's input index as a uint8 (so at most 256 inputs);
- ``counts``: each row's number of nonzeros as a uint8 (at most 254 a row), then 255
  after the last row: the kernel's row loop ends on that byte, with no row counter.

Against csr this drops the row pointers (2 bytes a row past 255 nonzeros) for one count
byte, and the kernel (``kernels/dense_csr8.c.j2``) reads the count instead of subtracting
two pointers, does the count's remainder first (input order is kept for the general
arithmetic path), then four nonzeros a turn. On the Cortex-M4 that is about 4.3
instructions per nonzero and 17 per row where csr spends 4.5 and 43 (docs/kernels.md). A
layer with more than 256 inputs or a row with more than 254 nonzeros is not eligible:
``auto`` skips the format for that layer.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from hwprune.backends.c.formats.core import EncodedArray, FormatNotApplicable, StorageFormat, register_format

MAX_INPUTS = 256
MAX_ROW_NONZEROS = 254
END = 255  # after the last row's count: the kernel's loop ends on it


def _check_csr8(w: np.ndarray, value_c_type: str) -> dict[str, int]:
    if w.shape[1] > MAX_INPUTS:
        raise FormatNotApplicable(f"{w.shape[1]} inputs do not fit a uint8 column index (at most {MAX_INPUTS}); "
                                  f"choose csr")
    densest = int(np.count_nonzero(w, axis=1).max()) if w.size else 0
    if densest > MAX_ROW_NONZEROS:
        raise FormatNotApplicable(f"a row holds {densest} nonzeros, more than a uint8 count takes "
                                  f"({MAX_ROW_NONZEROS}, 255 ends the rows); choose csr")
    return {}


def _encode_csr8(w: np.ndarray, value_c_type: str) -> tuple[EncodedArray, ...]:
    rows, cols = np.nonzero(w)  # row-major: columns ascend within a row
    return (
        EncodedArray("values", "value", value_c_type, w[rows, cols]),
        EncodedArray("columns", "index", "uint8_t", cols),
        EncodedArray("counts", "pointer", "uint8_t", np.append(np.count_nonzero(w, axis=1), END)),
    )


def _decode_csr8(arrays: Mapping[str, np.ndarray], shape) -> np.ndarray:
    w = np.zeros(shape, dtype=np.int64)
    counts = np.asarray(arrays["counts"], dtype=np.int64)
    if counts.size != shape[0] + 1 or counts[-1] != END:
        raise ValueError(f"csr8: {counts.size} row counts for {shape[0]} rows")
    rows = np.repeat(np.arange(shape[0]), counts[:-1])
    w[rows, np.asarray(arrays["columns"])] = np.asarray(arrays["values"])
    return w


register_format(StorageFormat(
    "csr8", _encode_csr8, _decode_csr8,
    "nonzero values, uint8 columns and a uint8 count a row: csr without row pointers (up to 256 inputs)",
    choose_params=_check_csr8,
))
