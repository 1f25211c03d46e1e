"""Reference implementations the fast kernels are pinned to (by `lax.conv`), and the
tolerance helper of float comparisons. Only the tests use them."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.core import ops


def conv5x5_reference(x, w):
    """`ops.conv5x5` through `lax.conv_general_dilated`: one 5x5 kernel, zero padding 2."""
    lead = x.shape[:-2]
    y = ops.conv2d(x.reshape((-1, 1) + x.shape[-2:]), w[None, None])
    return y.reshape(lead + x.shape[-2:])


def pooled_conv_reference(x, w):
    """`ops.pooled_conv` by `lax.conv` + relu + first-arg-max pooling: (n c h/4 w/4)."""
    n, hh, ww = x.shape
    c = w.shape[0]
    y = jax.nn.relu(ops.conv2d(x[:, None], w[:, None]))
    p = ops.POOL
    h, wd = hh // p, ww // p
    win = y.reshape(n, c, h, p, wd, p).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, wd, p * p)
    idx = jnp.argmax(win, axis=-1)
    return jnp.take_along_axis(win, idx[..., None], axis=-1)[..., 0]


def assert_close(actual, desired, rtol: float = 1e-5, atol_scale: float = 1e-5):
    """allclose with the absolute tolerance relative to the magnitude of `desired` (its max
    absolute value): float32 sums of large terms are compared at their own scale."""
    desired = np.asarray(desired)
    scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    np.testing.assert_allclose(np.asarray(actual), desired, rtol=rtol,
                               atol=atol_scale * max(scale, 1.0))
