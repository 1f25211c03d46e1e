"""Binary inference as bit logic: +-1 planes packed 32 frames to a uint32 word, the +-1
convolutions as XOR and bit-sliced counting, thresholds as comparators, max-pooling as OR.

Bit `l` of a word is pixel (y, x) of frame (or window) `l` of a group of 32: every tap of a
5x5 kernel is a static slice of a padded word plane, every pixel of the 4x4 pooling window a
static slice of its polyphase component, and the sensor's tiled layout a reshape. (Packing
along the row instead would cost a cross-word shift for every horizontal tap and a bit
compaction for the pooling.) A bit is 1 for +1 (for {0, 1} planes: for 1).

Arithmetic, for +-1 inputs x and weights w:
  * the product bit of one tap is x XOR m, m = all ones where w = -1 (1 where x w = +1);
  * the sum of 25 products is 2 c - 25 + s, c the count of product bits over all 25 taps
    and s the sum of the weights whose taps fall outside the frame (zero padding; the
    padded bits are 0, i.e. -1): c is computed bit-sliced, a carry-save tree of full adders
    over the words, one word per bit of c;
  * a comparison against a learned float threshold is a comparison of c against an integer
    per pixel, found by evaluating the float path's own comparison at every attainable sum
    (so rounding of the float threshold is reproduced whatever its value);
  * sign(maxpool(relu(y)) - t) is +1 exactly where some y of the window passes (the
    comparison is monotone in y), the OR of the window's 16 comparison words.
{0, 1} planes (genRNN in the (0, 1) regime) count x XOR m with an offset of minus the number
of negative weights; their zero padding needs no correction.

Planes in the CNN are (H W F): F words (32 frames each) last, so every operand of the fused
loop is contiguous along it. The layer runs one fused loop per window position under
`lax.scan`: fused together, the 16 positions' trees exceed what XLA:CPU keeps vectorized.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import ops
from pixelrnn_jax.core.encoder import effective_threshold

__all__ = ["WORD", "ONES", "TAPS", "pack", "unpack", "count_bits", "at_least",
           "smallest_passing", "weight_masks", "pad_sum", "not_below_masks", "conv_terms",
           "pooled_layer"]

Array = jax.Array

WORD = 32
ONES = 0xFFFFFFFF


def pack(bits: Array, axis: int = -1) -> Array:
    """Booleans -> uint32 words along `axis` (ceil(n / 32) words for n elements there): bit
    l of word i is element 32 i + l, zero-padded.

    The 32 elements of a word are summed where they lie: along a leading axis that is 32
    contiguous vector loads per row of words, along the last a gather."""
    axis = axis % bits.ndim
    n = bits.shape[axis]
    words = -(-n // WORD)
    pad = [(0, 0)] * bits.ndim
    pad[axis] = (0, words * WORD - n)
    bits = jnp.pad(bits, pad)
    bits = bits.reshape(bits.shape[:axis] + (words, WORD) + bits.shape[axis + 1:])
    shifts = jnp.arange(WORD, dtype=jnp.uint32).reshape((WORD,) + (1,) * (bits.ndim - axis - 2))
    # distinct powers of two: the sum is their OR
    return jnp.sum(bits.astype(jnp.uint32) << shifts, axis=axis + 1, dtype=jnp.uint32)


def unpack(words: Array, n: int) -> Array:
    """Inverse of `pack`: words (... nw) -> n elements (... n), uint32 0 or 1."""
    bits = (words[..., None] >> jnp.arange(WORD, dtype=jnp.uint32)) & 1
    return bits.reshape(words.shape[:-1] + (-1,))[..., :n]


def _full_add(a, b, c):
    t = a ^ b
    return t ^ c, (a & b) | (c & t)


def count_bits(terms: list, limit: int) -> list:
    """Bit-sliced sum of words: `terms` are (word, e) pairs, each bit worth 2**e; `limit` is
    the largest attainable sum. Returns the words of the sum's bits, least significant
    first, None for a bit that is always 0.

    A carry-save tree: full adders while a column holds three words, a half adder for two.
    A carry into a column at or above limit's bit length is always 0 and is never formed.
    """
    nbits = max(limit, 1).bit_length()
    cols = [[] for _ in range(nbits)]
    for word, exponent in terms:
        cols[exponent].append(word)
    out = []
    for bit in range(nbits):
        col = cols[bit]
        keep_carry = bit + 1 < nbits
        while len(col) >= 2:
            if len(col) >= 3:
                a, b, c = col.pop(0), col.pop(0), col.pop(0)
                if keep_carry:
                    s, carry = _full_add(a, b, c)
                else:
                    s, carry = a ^ b ^ c, None
            else:
                a, b = col.pop(0), col.pop(0)
                s, carry = a ^ b, (a & b if keep_carry else None)
            col.append(s)
            if carry is not None:
                cols[bit + 1].append(carry)
        out.append(col[0] if col else None)
    return out


def at_least(bits: list, not_a: list) -> Array:
    """The word of c >= A per bit: c given by its bit words (`count_bits`), A by the words of
    its complement's bits (`not_below_masks`, all ones or all zeros per pixel).

    Least significant bit first, "c >= A on the bits so far" is maj(c_i, ~A_i, previous),
    starting from "equal" (true).
    """
    ge = None
    for i, n in enumerate(not_a):
        a = bits[i] if i < len(bits) else None
        if ge is None:
            ge = n if a is None else a | n
        elif a is None:
            ge = ge & n
        else:
            ge = (a & n) | (ge & (a | n))
    return ge


def smallest_passing(passes, lo: int, hi: int) -> Array:
    """The smallest integer v in [lo, hi] with passes(float32 v), hi + 1 if none does;
    `passes` is the float path's comparison (monotone in v), evaluated at every v."""
    v = jnp.arange(lo, hi + 1, dtype=jnp.int32)
    return lo + jnp.sum(~passes(v.astype(jnp.float32)), dtype=jnp.int32)


def weight_masks(kernel: Array) -> Array:
    """uint32 XOR masks of a binary kernel's latent weights: all ones where sign(w) = -1."""
    return jnp.where(kernel < 0, jnp.uint32(ONES), jnp.uint32(0))


def pad_sum(kernel: Array, shape: tuple[int, int]) -> Array:
    """Sum of the +-1 weights whose taps fall outside an (H W) frame at every pixel,
    int32 (... H W) for kernels (... 5 5): what the zero padding takes away.

    The taps inside are those of inside rows times inside columns, a separable sum (two
    small products instead of a convolution of a plane of ones)."""
    w = jnp.where(kernel >= 0, 1.0, -1.0)
    hh, ww = shape
    rows = _inside(hh)
    cols = _inside(ww)
    inside = jnp.einsum("yd,...de,xe->...yx", rows, w, cols,
                        precision=jax.lax.Precision.HIGHEST)
    total = w.sum((-2, -1))[..., None, None]
    return (total - inside).astype(jnp.int32)


def _inside(size: int) -> np.ndarray:
    """(size 5) float32: 1 where tap d of pixel i reads inside the frame."""
    i = np.arange(size)[:, None] + np.arange(ops.KERNEL)[None] - ops.PAD
    return ((i >= 0) & (i < size)).astype(np.float32)


def not_below_masks(threshold: Array, bits: int) -> Array:
    """Words of the complement's bits of an integer threshold per pixel, (bits ...) uint32:
    what `at_least` compares against. The threshold is clipped to [0, 2**bits - 1]."""
    a = jnp.clip(threshold, 0, 2 ** bits - 1).astype(jnp.uint32)
    j = jnp.arange(bits, dtype=jnp.uint32).reshape((bits,) + (1,) * a.ndim)
    return ((a[None] >> j) & 1) - jnp.uint32(1)     # bit 1 -> 0, bit 0 -> all ones


TAPS = ops.KERNEL * ops.KERNEL
_CNN_BITS = (TAPS + 1).bit_length()


def _cnn_thresholds(kernel: Array, threshold: Array, h: int, w: int) -> Array:
    """(4 a, 4 b, 4 rb, h, 4 cb, w) uint32 count thresholds of the layer, clipped to its
    comparators' range: window offset (a, b), channel 4 cb + rb at pooled pixel (i, j),
    i.e. conv pixel (4 i + a, 4 j + b)."""
    t = effective_threshold(threshold, True)
    # the float path: relu'd window maximum (int16 -> float32) minus the threshold, >= 0
    big_t = smallest_passing(lambda v: jnp.maximum(v, 0.0) - t >= 0, -TAPS, TAPS)
    # pad_sum, computed in the layout of the comparisons: y = 4 i + a, x = 4 j + b
    wq = jnp.where(kernel >= 0, 1.0, -1.0).reshape(4, 4, ops.KERNEL, ops.KERNEL)
    rows = _inside(4 * h).reshape(h, 4, ops.KERNEL).transpose(1, 0, 2)   # (a i dy)
    cols = _inside(4 * w).reshape(w, 4, ops.KERNEL).transpose(1, 0, 2)   # (b j dx)
    half = jnp.einsum("bjx,crdx->bjcrd", cols, wq, precision=jax.lax.Precision.HIGHEST)
    # (a 1 1 i 1 1) x (1 b rb 1 cb j) for every row tap: a fused sum in the target layout
    inside = sum(rows[:, None, None, :, None, None, dy]
                 * half[..., dy].transpose(0, 3, 2, 1)[None, :, :, None]
                 for dy in range(ops.KERNEL))
    pad = wq.sum((-2, -1)).T[:, None, :, None] - inside
    # y = 2 c - 25 + pad >= T  <=>  c >= ceil((T + 25 - pad) / 2)
    need = (big_t + TAPS + 1 - pad.astype(jnp.int32)) >> 1
    return jnp.clip(need, 0, 2 ** _CNN_BITS - 1).astype(jnp.uint32)


def pooled_layer(x: Array, kernel: Array, threshold: Array) -> Array:
    """One binary in-pixel CNN layer on packed planes (H W F) -> (H W F), tiled: bit-exact
    with `encoder.cnn_layer` (sign(maxpool(relu(conv)) - threshold)) on the unpacked frames.

    `kernel` (16 5 5) and `threshold` are the layer's latent parameters.
    """
    hh, ww, f = x.shape
    h, w = hh // ops.POOL, ww // ops.POOL
    # (rb, cb, dy, dx): channel c = 4 cb + rb, the tiled layout's blocks
    masks = weight_masks(kernel).reshape(4, 4, ops.KERNEL, ops.KERNEL).transpose(1, 0, 2, 3)
    # the thresholds are loop inputs, computed once; their comparator words are formed in
    # the loop (outside it, their fused computation would be repeated for every bit)
    need = _cnn_thresholds(kernel, threshold, h, w).reshape(16, 4, h, 4, w)
    # room for the window offset (<= 3) and the kernel (5) past the last 4x4 block
    xp = jnp.pad(x, ((ops.PAD, ops.PAD + 3), (ops.PAD, ops.PAD + 3), (0, 0)))

    def position(out, inp):
        offset, na = inp
        na = not_below_masks(na, _CNN_BITS)
        sub = jax.lax.dynamic_slice(xp, (offset // 4, offset % 4, 0), (hh + 4, ww + 4, f))
        sub = sub.reshape(h + 1, 4, w + 1, 4, f)
        terms = []
        for dy in range(ops.KERNEL):
            for dx in range(ops.KERNEL):
                xs = sub[dy // 4:dy // 4 + h, dy % 4, dx // 4:dx // 4 + w, dx % 4]
                terms.append((xs[None, :, None] ^ masks[:, None, :, None, None, dy, dx], 0))
        hit = at_least(count_bits(terms, TAPS), [na[j][..., None] for j in range(_CNN_BITS)])
        return out | hit, None

    out0 = jnp.zeros((4, h, 4, w, f), jnp.uint32)
    out, _ = jax.lax.scan(position, out0, (jnp.arange(16, dtype=jnp.int32), need))
    return out.reshape(hh, ww, f)


def conv_terms(padded: Array, masks: Array, e: int, shape: tuple[int, int], nw: int = 1) -> list:
    """The 25 product words (e, for `count_bits`) of a 5x5 kernel's XOR masks (5 5) with a
    zero-padded plane (... H+4 (W+4)*nw) whose pixels hold nw words side by side."""
    hh, ww = shape
    return [(padded[..., dy:dy + hh, dx * nw:(dx + ww) * nw] ^ masks[dy, dx], e)
            for dy in range(ops.KERNEL) for dx in range(ops.KERNEL)]
