"""Where the PixelRNN program keeps its kernels on the SCAMP-5 block grid (paper Figs. 4, 5, S2,
S3).

* The array is a 4 x 4 grid of s x s PE blocks (s = 64 on the chip).
* CNN layer: block (by, bx) convolves with channel `c = by + 4 * bx`. Pooled and compacted,
  block (by, bx) becomes tile (by, bx) of the next plane: channel c at row-block c % 4 and
  column-block c // 4, the layout of `pixelrnn_jax.ops.tile`. (The authors' header lists the
  kernels block by block, slot n = 4 * by + bx.)
* PixelRNN gates: the four central blocks, w_f in (1, 1), u_f in (1, 2), w_o in (2, 1) and
  u_o in (2, 2) (header slots 5, 6, 9 and 10). x_t is routed to column 1, h to column 2;
  f_t is formed in (1, 2) and o_t in (2, 2), which is read out.
* Taps: the 25 shift-and-accumulate steps of a 5 x 5 kernel run bottom kernel row first,
  each row left to right (the order of the authors' header and text format). Tap (dy, dx)
  multiplies the input at offset (dy - 2, dx - 2) from the output pixel.
"""
from __future__ import annotations

__all__ = ["GRID", "KERNEL", "TAPS", "CELL_BLOCKS", "CENTRAL", "GATE_COLS", "FORGET_BLOCK",
           "OUTPUT_BLOCK", "channel_of_block"]

GRID = (4, 4)
KERNEL = 5
TAPS = tuple((dy, dx) for dy in range(KERNEL - 1, -1, -1) for dx in range(KERNEL))
CELL_BLOCKS = {"w_f": (1, 1), "u_f": (1, 2), "w_o": (2, 1), "u_o": (2, 2)}
# The gate program runs on the central 2 x 2 blocks; positions below are within them.
CENTRAL = (slice(1, 3), slice(1, 3))
GATE_COLS = (0, 1)          # x_t's column, h's column
FORGET_BLOCK = (0, 1)       # block (1, 2) of the array
OUTPUT_BLOCK = (1, 1)       # block (2, 2) of the array, the one read out


def channel_of_block(by: int, bx: int) -> int:
    """The CNN channel block (by, bx) computes."""
    return by + 4 * bx
