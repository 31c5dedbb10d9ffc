"""``csro``: offset csr, a conv layer's nonzeros with their input offsets precomputed.

csr stores each nonzero's filter column ``(kh * k_w + kw) * cin + c``, and the conv kernel
turns it back into an input position at every tap (two constant divisions, a remainder and
four bounds checks). csro stores instead where the tap reads, relative to the window's
top-left corner in a zero-padded copy of the input:

- ``values``: the nonzero weights, filter by filter in filter order (kh, kw, cin);
- ``offsets``: ``(kh * Wp + kw) * cin + c`` per nonzero, with ``Wp`` the padded input's
  width (uint8 when every offset fits, else uint16);
- ``counts``: each filter's number of nonzeros as a uint8 (at most 254), then 255.

For every output position the kernel (``kernels/conv_csro.c.j2``) then runs csr8's Dense
loop on the window: ``acc += x[base + offset] * value``, four nonzeros a turn, SMLAD on
cores with the DSP extension. A layer with padding reads a static zero-bordered copy of
its input (the border is written never, the inside once per call), so no tap is checked;
a tap on padding multiplies an exact zero, as the reference's skipped tap adds one.

The offsets depend on the input's width, so the format needs the layer's input shape
(``encode(layer, "csro", input_shape)``); Dense and depthwise layers are not eligible.
The kernel's parameters (``row``: the padded row's length in elements, ``cin``, ``k_w``)
are stored with the arrays, so ``decode`` needs nothing else.
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from hwprune.backends.c.formats.core import EncodedArray, FormatNotApplicable, StorageFormat, register_format

MAX_ROW_NONZEROS = 254
END = 255  # after the last filter's count: the kernel's loop ends on it
MAX_OFFSET = 65535


def _check_csro(w: np.ndarray, value_c_type: str, window=None) -> dict[str, int]:
    if window is None:
        raise FormatNotApplicable("csro stores conv layers only (its offsets need the input shape)")
    if window.multiplier or window.in_per_group != window.channels:
        raise FormatNotApplicable("csro has no depthwise or grouped conv kernel; choose csr")
    densest = int(np.count_nonzero(w, axis=1).max()) if w.size else 0
    if densest > MAX_ROW_NONZEROS:
        raise FormatNotApplicable(f"a filter holds {densest} nonzeros, more than a uint8 count takes "
                                  f"({MAX_ROW_NONZEROS}, 255 ends the filters); choose csr")
    params = {"row": window.padded_w * window.channels, "cin": window.channels, "k_w": window.k_w}
    largest = (window.k_h - 1) * params["row"] + window.k_w * window.channels - 1
    if largest > MAX_OFFSET:
        raise FormatNotApplicable(f"input offsets up to {largest} do not fit uint16; choose csr")
    return params


def offsets_of(columns: np.ndarray, row: int, cin: int, k_w: int) -> np.ndarray:
    """Filter columns ``(kh * k_w + kw) * cin + c`` -> input offsets ``kh * row + kw * cin + c``."""
    columns = np.asarray(columns, dtype=np.int64)
    return columns // (k_w * cin) * row + columns % (k_w * cin)


def _encode_csro(w: np.ndarray, value_c_type: str, row: int, cin: int, k_w: int) -> tuple[EncodedArray, ...]:
    rows, cols = np.nonzero(w)  # row-major: columns (and so offsets) ascend within a filter
    offsets = offsets_of(cols, row, cin, k_w)
    index_t = "uint8_t" if offsets.size == 0 or offsets.max() <= 255 else "uint16_t"
    return (
        EncodedArray("values", "value", value_c_type, w[rows, cols]),
        EncodedArray("offsets", "index", index_t, offsets),
        EncodedArray("counts", "pointer", "uint8_t", np.append(np.count_nonzero(w, axis=1), END)),
    )


def _decode_csro(arrays: Mapping[str, np.ndarray], shape, row: int, cin: int, k_w: int) -> np.ndarray:
    w = np.zeros(shape, dtype=np.int64)
    counts = np.asarray(arrays["counts"], dtype=np.int64)
    if counts.size != shape[0] + 1 or counts[-1] != END:
        raise ValueError(f"csro: {counts.size} filter counts for {shape[0]} filters")
    offsets = np.asarray(arrays["offsets"], dtype=np.int64)
    columns = offsets // row * (k_w * cin) + offsets % row
    w[np.repeat(np.arange(shape[0]), counts[:-1]), columns] = np.asarray(arrays["values"])
    return w


register_format(StorageFormat(
    "csro", _encode_csro, _decode_csro,
    "conv only: nonzero values, each one's input offset in the padded window (uint8/uint16), a uint8 count a filter",
    choose_params=_check_csro, spatial=True,
))
