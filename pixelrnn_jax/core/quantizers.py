"""Quantizers with surrogate gradients (paper Sec. 3.3, supplement S1.2).

Each quantizer is a small function with a `jax.custom_vjp`: the forward pass produces the
discrete values the sensor stores, the backward pass uses the derivative of a smooth proxy.
Python-float hyperparameters (the steepness `m`, a ternary threshold) are non-differentiable
arguments; arrays never are.

| name        | forward                         | backward (d/dx of)           | bits |
|-------------|---------------------------------|------------------------------|------|
| `sign`      | {-1, +1}, sign(0) = +1          | tanh(m x)                    | 1    |
| `heaviside` | {0, 1}, 1 where x > 0           | sigmoid(m x)                 | 1    |
| `ternary`   | {-1, 0, 1}, 0 where |x| <= delta | (tanh(m(x-d)) + tanh(m(x+d)))/2 | 2 |

32-bit models use no quantizer. Latent weights stay floats; quantizing them in the forward
pass lets the surrogate gradient reach them, so a binary weight can flip during training.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["sign", "heaviside", "ternary", "numpy_sign", "add_noise"]

Array = jax.Array


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def sign(x: Array, m: float = 2.0) -> Array:
    """{-1, +1} with sign(0) = +1; gradient m * (1 - tanh^2(m x))."""
    return jnp.where(x >= 0, 1.0, -1.0).astype(x.dtype)


def _sign_fwd(x, m):
    return sign(x, m), x


def _sign_bwd(m, x, g):
    t = jnp.tanh(m * x)
    return (g * (m * (1.0 - t * t)).astype(g.dtype),)


sign.defvjp(_sign_fwd, _sign_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def heaviside(x: Array, m: float = 2.0) -> Array:
    """{0, 1}, 1 where x > 0 (Eq. S33); gradient of sigmoid(m x) (Eq. S34)."""
    return jnp.where(x > 0, 1.0, 0.0).astype(x.dtype)


def _heaviside_fwd(x, m):
    return heaviside(x, m), x


def _heaviside_bwd(m, x, g):
    s = jax.nn.sigmoid(m * x)
    return (g * (m * s * (1.0 - s)).astype(g.dtype),)


heaviside.defvjp(_heaviside_fwd, _heaviside_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def ternary(x: Array, m: float = 2.0, delta: float = 0.5) -> Array:
    """{-1, 0, 1}: -1 below -delta, 0 within [-delta, delta], 1 above delta.

    Gradient: derivative of (tanh(m (x - delta)) + tanh(m (x + delta))) / 2, the smooth
    two-step staircase through the same three levels.
    """
    return (jnp.where(x > delta, 1.0, 0.0) - jnp.where(x < -delta, 1.0, 0.0)).astype(x.dtype)


def _ternary_fwd(x, m, delta):
    return ternary(x, m, delta), x


def _ternary_bwd(m, delta, x, g):
    a = jnp.tanh(m * (x - delta))
    b = jnp.tanh(m * (x + delta))
    return (g * (0.5 * m * ((1.0 - a * a) + (1.0 - b * b))).astype(g.dtype),)


ternary.defvjp(_ternary_fwd, _ternary_bwd)


def numpy_sign(values) -> np.ndarray:
    """`sign` on the host, for deployed weights: int8 {-1, +1}, sign(0) = +1."""
    return np.where(np.asarray(values) >= 0, 1, -1).astype(np.int8)


def add_noise(x: Array, std: float, rng: Array | None) -> Array:
    """Adds N(0, std^2) noise before a quantizer (noise-aware training, paper Sec. 5.2).

    `std` is a Python float fixed per site; `rng` is an explicit PRNG key. With std == 0 or
    no key the input is returned unchanged, so evaluation is noise-free by default.
    """
    if std <= 0.0 or rng is None:
        return x
    return x + std * jax.random.normal(rng, x.shape, x.dtype)
