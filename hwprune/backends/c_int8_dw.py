"""The arrays of ``hwp_dw3_s8`` (templates/c/hwprune_int8_dw.h): a 3x3 DEPTHWISE_CONV_2D with
one filter per channel and stride 1 or 2, and the proof that its requantization is exact.

The kernel accumulates twice the reference's int32 sum (weights and bias doubled) and
requantizes with one SMMLAR and one shift: ``(SMMLAR(2 acc, m, A)) >> e`` with
``A = 2^(e-1) + out_zp 2^e`` (minus ``[acc < 0]`` unless ``out_zp <= act_min``), the form and
the proof of ``c_int8_rq.smmlar_terms``. ``depthwise_plan`` returns None (the layer keeps
``hwp_dwconv_s8``) where that form is not exact (a bound fails, a multiplier is negative or a
shift is left), and for outputs of at most 3x3 pixels (measured on
MobileNet's last layers: the per-row costs of the ring outweigh the MACs there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwprune.backends.c import arena
from hwprune.backends.c_int8_rq import acc_bound, smmlar_terms

RING_GROWTH = 1 / 16  # the most a ring may grow the arena by: this share of it ...
RING_FLOOR = 256  # ... or these bytes, the more of the two


@dataclass(frozen=True)
class DepthwisePlan:
    table: np.ndarray  # (c, 10) int32: per kernel row (2 k0, 2 k1) and (2 k1, 2 k2) as halfword pairs,
    # then 2 bias, multiplier, A, e
    neg: bool  # whether A takes the tie term -[acc < 0]
    transposed: bool  # the kernel's "rows" are the image's columns (kernel transposed)
    in_cols: int  # pixels of an input row (in the kernel's orientation)
    out_cols: int
    stride: int
    pad_cols: int  # padding before a row

    def ring_width(self, strip: int) -> int:
        """Halfwords of a channel's row in the ring for strips of ``strip`` outputs."""
        widths = []
        for s0 in range(0, self.out_cols, strip):
            ow = min(strip, self.out_cols - s0)
            ix0, ix1 = s0 * self.stride - self.pad_cols, (s0 + ow - 1) * self.stride - self.pad_cols + 3
            first, end = max(ix0, 0), min(ix1, self.in_cols)
            widths.append(ring_width(max(end - first, 0), ow, self.stride, first - ix0))
        return max(widths)

    def ring_bytes(self, channels: int, strip: int) -> int:
        """The ring for passes of ``channels`` channels: three rows of int16 (HWP_DW3_RING)."""
        return 2 * 3 * channels * self.ring_width(strip)


def _pair(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    word = (lo.astype(np.int64) & 0xFFFF) | ((hi.astype(np.int64) & 0xFFFF) << 16)
    return np.where(word >= 1 << 31, word - (1 << 32), word)


def ring_width(in_w: int, out_w: int, stride: int, pad_l: int) -> int:
    """Even, holding the padded input row and every column the kernel reads: stride 1 reads
    words up to 2 * ceil(out_w / 2) + 1, stride 2 up to 4 * ceil(out_w / 2) + 1 (halfwords)."""
    pairs = (out_w + 1) // 2
    reads = (2 if stride == 1 else 4) * pairs + 2
    width = max(pad_l + in_w, reads)
    return width + (width & 1)


def _cycles(rows: int, width: int, spill: bool) -> int:
    """Estimated Cortex-M4 cycles per channel of ``hwp_dw3_s8`` over ``rows`` rows of ``width``
    outputs: about 42 a pair of outputs, 20 a row. An odd row end runs as a pair whose second
    output lands on the next row's first where the rows are the image's (``spill``; the last
    row then needs a second pass, 62), else as a second pass on every row."""
    odd = width % 2
    if spill:
        return rows * (20 + 42 * ((width + 1) // 2)) + (62 if odd else 0)
    return rows * (20 + 42 * (width // 2) + (62 if odd else 0))


def depthwise_plan(layer, in_t, in_shape, out_shape, transposed: bool | None = None) -> DepthwisePlan | None:
    """The arrays of ``hwp_dw3_s8`` for ``layer``, or None where the kernel does not apply;
    ``transposed`` None: the orientation of fewer estimated cycles."""
    (in_h, in_w, c), (_, out_w, out_c) = in_shape, out_shape
    if not layer.depthwise or out_c != c or tuple(layer.weight.shape[1:3]) != (3, 3):
        return None
    if tuple(layer.stride) not in ((1, 1), (2, 2)):
        return None
    if out_shape[0] * out_shape[1] <= 9:  # 3x3 outputs or fewer: the rows' fixed costs outweigh the MACs
        return None
    w = np.asarray(layer.weight[..., 0], dtype=np.int64).reshape(c, 3, 3)
    bias = np.asarray(layer.bias, dtype=np.int64)
    zp = int(in_t.zero_point)
    terms = smmlar_terms(layer.out_multiplier, layer.out_shift, int(layer.result_t.zero_point), layer.act_min,
                         acc_bound(w, bias, max(127 - zp, zp + 128)))
    if terms is None:
        return None
    mult = np.asarray(layer.out_multiplier, dtype=np.int64)
    out_h = out_shape[0]
    if transposed is None:
        transposed = _cycles(out_w, out_h, spill=False) < _cycles(out_h, out_w, spill=True)
    # the written-out loop keeps the output's pixel stride and the pair count in 12 bits each
    if (out_w * c if transposed else c) >= 1 << 12 or max(out_h, out_w) >= 1 << 13:
        return None
    if transposed:
        w = w.transpose(0, 2, 1)
    words = np.stack([_pair(2 * w[:, r, lo], 2 * w[:, r, lo + 1]) for r in range(3) for lo in (0, 1)], axis=1)
    table = np.concatenate([words, np.stack([2 * bias, mult, terms.a, terms.e], axis=1)], axis=1)
    if transposed:
        geometry = (in_h, out_h, layer.stride[0], layer.padding[0][0])
    else:
        geometry = (in_w, out_w, layer.stride[1], layer.padding[1][0])
    return DepthwisePlan(table.astype(np.int64), terms.tie, bool(transposed), *geometry)


def _strip(plan: DepthwisePlan, channels: int, budget: int) -> int:
    """The widest strip of a row whose ring for ``channels`` channels takes at most ``budget``
    bytes (at least two outputs), then the row cut into equal strips of an even width."""
    whole = plan.out_cols
    strip = next((w for w in range(whole, 2, -1) if plan.ring_bytes(channels, w) <= budget), 2)
    pieces = -(-whole // strip)
    even = -(-whole // pieces)
    return min(strip, even + (even & 1))


def ring_passes(plan: DepthwisePlan, free: int, arena_bytes: int) -> tuple[int, int]:
    """(channels per pass, outputs per strip of a row) for a ring in ``free`` bytes of an
    arena of ``arena_bytes``: as many channels as fit, whole rows; where not even four fit,
    passes of four over strips of a row as wide as a ring of ``RING_GROWTH`` of the arena
    (or ``RING_FLOOR`` bytes) allows, the arena growing by no more."""
    c, whole = plan.table.shape[0], plan.out_cols
    least = min(4, c)
    if plan.ring_bytes(least, whole) <= free:
        block = c if plan.ring_bytes(c, whole) <= free else free // plan.ring_bytes(4, whole) * 4
        return min(block, c), whole
    return least, _strip(plan, least, max(free, int(arena_bytes * RING_GROWTH), RING_FLOOR))


def rings_of(graph, tensors: list, dense, whole=frozenset()) -> dict:
    """Per 3x3 depthwise layer of ``graph`` that ``hwp_dw3_s8`` runs (stored dense by the
    predicate ``dense``): (its plan, channels per pass, outputs per strip of a row). Its ring
    of widened rows is a buffer of the arena live during the layer alone, sized to the bytes
    the ``tensors`` (the arena's buffers) leave free at that step (``ring_passes``); the layers
    named in ``whole`` take every channel and whole rows in one pass (``hwp_pwdw3_s8``)."""
    size = arena.plan(tensors).nbytes
    rings = {}
    for i, layer in enumerate(graph.layers):
        if layer.kind != "int8_conv2d" or not layer.depthwise or not dense(layer):
            continue
        plan = depthwise_plan(layer, graph.input_types(layer)[0], graph.input_shapes(layer)[0],
                              graph.shape_of(layer.name))
        if plan is None:
            continue
        if layer.name in whole:
            rings[layer.name] = (plan, plan.table.shape[0], plan.out_cols)
            continue
        free = size - sum(arena.aligned(b.nbytes) for b in tensors if b.first <= i <= b.last)
        rings[layer.name] = (plan, *ring_passes(plan, free, size))
    return rings


def _geometry(layer, plan: DepthwisePlan, in_shape, out_shape) -> tuple:
    """hwp_dw3_s8's geometry in the kernel's orientation: in_h, in_w, c, in_row, in_px, out_h,
    out_w, out_row, out_px, stride, pad_t, pad_l (a transposed layer's rows are the image's
    columns)."""
    (in_h, in_w, c), (out_h, out_w, _) = in_shape, out_shape
    pad_t, pad_l = layer.padding[0][0], layer.padding[1][0]
    if plan.transposed:
        return in_w, in_h, c, c, in_w * c, out_w, out_h, c, out_w * c, layer.stride[0], pad_l, pad_t
    return in_h, in_w, c, in_w * c, c, out_h, out_w, out_w * c, c, layer.stride[0], pad_t, pad_l


def depthwise_call(layer, plan: DepthwisePlan, block: int, strip: int, ring: str, p: str, src: str, dst: str, in_t,
                   in_shape, out_shape) -> str:
    """The call: in the image's order (rows of pixels) or transposed (its columns as rows),
    ``block`` channels a pass, rows in strips of ``strip`` outputs, the ring at the C address
    ``ring``."""
    geometry = ", ".join(str(v) for v in _geometry(layer, plan, in_shape, out_shape))
    return (f"hwp_dw3_s8({src}, {dst}, {geometry}, {plan.ring_width(strip)}, {block}, {strip}, {p}_kq, "
            f"{in_t.zero_point}, {int(plan.neg)}, {layer.act_min}, {layer.act_max}, {ring});")


def fused_call(layer, plan: DepthwisePlan, ring: str, p: str, dst: str, in_shape, out_shape, pw_src: str, pw_p: str,
               pw_k: int, pw_in_t) -> str:
    """The call of ``hwp_pwdw3_s8``: the depthwise ``layer`` (every channel in one pass over
    whole rows) with the 1x1 convolution before it (records ``{pw_p}_w`` in the ring's form,
    ``pw_k`` input channels), whose input ``pw_src`` has the depthwise input's pixels."""
    in_h, in_w, c, in_row, in_px, out_h, out_w, out_row, out_px, stride, pad_t, pad_l = _geometry(
        layer, plan, in_shape, out_shape)
    x_row, x_px = in_row // c * pw_k, in_px // c * pw_k  # the same pixels, pw_k channels each
    return (f"hwp_pwdw3_s8({pw_src}, {x_row}, {x_px}, {pw_k}, {pw_p}_w, {pw_in_t.zero_point}, {dst}, {in_h}, {in_w}, "
            f"{c}, {out_h}, {out_w}, {out_row}, {out_px}, {stride}, {pad_t}, {pad_l}, {plan.ring_width(out_w)}, "
            f"{p}_kq, {int(plan.neg)}, {layer.act_min}, {layer.act_max}, {ring}, hwp_scratch);")
