"""Requantization in one SMMLAR: the per-channel constants of ``hwp_rq``'s folded form
(templates/c/hwprune_int8_dsp.h) and of ``hwp_dw3_s8``, and the proof that it is exact.

TFLM requantizes an int32 sum ``acc`` as ``RoundingDivideByPOT(SRDHM(acc, m), e) + out_zp``.
With ``x = SRDHM(acc, m) = floor((acc m + 2^30) / 2^31)`` (m >= 0, never saturating),
``SMMLAR(2 acc, m, A) = A + x``, and with ``A = 2^(e-1) + out_zp 2^e - [acc < 0]``,
``(A + x) >> e`` is ``RoundingDivideByPOT(x, e) + out_zp``: the ``[x < 0]`` of the tie rule
may read ``[acc < 0]`` (they differ only where x = 0, which rounds to 0 either way). Where
``out_zp <= act_min`` the tie term is left out: it moves only results at or below ``out_zp``
by one, and the clamp takes all of them to ``act_min``. Exact when no int32 step can wrap:
``2 acc`` and ``A + x`` are bounded from the weights, the bias and the input range.

The folded form replaces ``hwp_rq``'s 64-bit multiply-accumulate and the five instructions
that build its addend with one doubling, one SMMLAR and one shift (about four cycles less per
output on the Cortex-M4). ``hwp_rq`` takes it when its ``out_zp`` argument is
``HWP_RQ_FOLDED`` (or ``HWP_RQ_FOLDED_TIE`` with the tie term) and its shift word holds
``A << 8 | e``; the kernels pass both on unchanged, and at an inlined call they are constants,
so only one form is compiled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INT32_MAX = (1 << 31) - 1
HWP_RQ_FOLDED = 256  # hwp_rq's out_zp argument selecting the folded form (templates/c/hwprune_int8_dsp.h)
HWP_RQ_FOLDED_TIE = 257  # ... with the tie term -[acc < 0]
A_LIMIT = 1 << 23  # A << 8 stays an int32


@dataclass(frozen=True)
class SmmlarTerms:
    a: np.ndarray  # (c,) int64: 2^(e-1) + out_zp 2^e, the tie term excluded
    e: np.ndarray  # (c,) int64: the right shift, 0..31
    tie: bool  # whether A takes -[acc < 0] at run time

    def words(self) -> np.ndarray:
        """``A << 8 | e`` per channel, as ``hwp_rq``'s folded form reads them."""
        return self.a * 256 + self.e


def acc_bound(weights: np.ndarray, bias: np.ndarray, x_abs_max: int) -> np.ndarray:
    """The largest ``|acc|`` per output channel: ``|bias| + sum |w| * x_abs_max`` over a
    ``(channels, inputs)`` weight matrix."""
    w = np.abs(np.asarray(weights, dtype=np.int64)).reshape(len(bias), -1)
    return np.abs(np.asarray(bias, dtype=np.int64)) + w.sum(axis=1) * x_abs_max


def smmlar_terms(multiplier, shift, out_zp: int, act_min: int, bound: np.ndarray) -> SmmlarTerms | None:
    """The folded form's constants for per-channel ``multiplier``/``shift`` (TFLite's: a
    negative shift is a right shift) and sums bounded by ``bound``, or None where it is not
    exact: a negative multiplier, a left shift, a tie term with e = 0, or a step that could
    wrap."""
    mult = np.asarray(multiplier, dtype=np.int64)
    e = -np.asarray(shift, dtype=np.int64)
    if np.any(mult < 0) or np.any(e < 0) or np.any(e > 31):
        return None
    tie = out_zp > act_min
    if tie and np.any(e == 0):  # the tie term exists only for e >= 1
        return None
    rounding = np.where(e > 0, np.left_shift(1, np.maximum(e - 1, 0)), 0)
    a = rounding + out_zp * np.left_shift(1, e)
    if np.any(2 * bound > INT32_MAX) or np.any(np.abs(a) + bound + 2 > INT32_MAX):
        return None
    return SmmlarTerms(a, e, bool(tie))


def rq_arrays(layer, in_t) -> tuple[np.ndarray, int]:
    """(shift array, out_zp argument) of an int8 FULLY_CONNECTED or convolution's ``hwp_rq``
    calls: the folded form's words and ``HWP_RQ_FOLDED`` or ``HWP_RQ_FOLDED_TIE`` where it is
    exact for the layer and ``A`` fits beside ``e`` in a word, else TFLite's shifts and the
    output zero point. The bound is on the sum the reference computes (bias plus weights times
    input minus zero point); a kernel that folds the zero point into the bias reaches the same
    int32 value, whatever its partial sums wrap to on the way."""
    zp, out_zp = int(in_t.zero_point), int(layer.result_t.zero_point)
    bound = acc_bound(layer.filter_matrix, layer.bias, max(127 - zp, zp + 128))
    terms = smmlar_terms(layer.out_multiplier, layer.out_shift, out_zp, layer.act_min, bound)
    if terms is None or np.any(np.abs(terms.a) >= A_LIMIT):
        return np.asarray(layer.out_shift, dtype=np.int64), out_zp
    return terms.words(), HWP_RQ_FOLDED_TIE if terms.tie else HWP_RQ_FOLDED


def ring_words(layer, in_t) -> np.ndarray | None:
    """The shift words of ``hwp_rq_ring`` for an int8 convolution whose output a depthwise
    layer's ring holds as ``y - zp``: the folded form with ``A = 2^(e-1)`` (no zero point),
    clamped to 0..255, which is that difference where the output zero point is -128 and its
    range all of int8 (in the shifted frame the zero point and the activation minimum are both
    0, so the tie term is left out as in ``smmlar_terms``). None for any other output, or where
    the form is not exact (as ``rq_arrays``)."""
    if int(layer.result_t.zero_point) != -128 or (layer.act_min, layer.act_max) != (-128, 127):
        return None
    zp = int(in_t.zero_point)
    bound = acc_bound(layer.filter_matrix, layer.bias, max(127 - zp, zp + 128))
    terms = smmlar_terms(layer.out_multiplier, layer.out_shift, 0, 0, bound)
    if terms is None or np.any(np.abs(terms.a) >= A_LIMIT):
        return None
    return terms.words()
