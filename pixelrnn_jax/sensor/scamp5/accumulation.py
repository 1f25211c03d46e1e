"""The error-accumulation protocol of a real SCAMP-5 study, run on the simulated chip.

Protocol (the data folder's `scamp5_noise_accumulation.json`, measured on a SCAMP-5d): a
uniform value v is written into register A through the DAC, A is read out, the kernel
{div2(A); copy(F <- A); add(A <- A + F)} (an identity in exact arithmetic) is applied n times
and A is read out again; 100 repetitions, the full 256 x 256 array. Here every repetition is
a video of the batch (fresh temporal noise each, the chip's fixed pattern throughout) and
runs the kernel `iterations` times, read out after every application: reading does not
disturb the register, so the readout after n applications is distributed as in a run of n
(`independent=True` restarts from the write for every n instead, `iterations` times slower).

Statistics, the measurement's definitions:
  bias[n-1]  mean over repetitions of the mean over pixels of (input readout - output readout
             after n applications): positive = the value shrank;
  std[0]     mean over repetitions of the std over pixels of the input readout;
  std[n]     mean over repetitions of the std over pixels of the output after n.

    curves = run(NoiseModel.from_calibration(chip="noise_accumulation"), [0, 60], 32, 100)
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax.sensor.scamp5.machine import Machine
from pixelrnn_jax.sensor.scamp5.noise import NoiseModel, bank_key, draw_bank

__all__ = ["ARRAY_SHAPE", "KERNEL", "kernel", "run", "load_measurement",
           "relative_errors", "targets_met", "BIAS_TARGET", "STD_TARGET"]

ARRAY_SHAPE = (4, 4, 64, 64)   # the 256 x 256 array as a grid of blocks
KERNEL = ("div2", "copy", "add")
BIAS_TARGET = 0.15   # relative mean absolute error of the bias curve
STD_TARGET = 0.20    # and of the std curve


def kernel(m: Machine, s):
    """diva(A, E, F); mov(F, A); add(A, A, F): an identity in exact arithmetic."""
    s = m.div2(s, "A", "A")
    s = m.copy(s, "F", "A")
    return m.add(s, "A", "A", "F")


def _stats(inp, out):
    axes = tuple(range(1, inp.ndim))
    return jnp.mean(inp - out, axis=axes), jnp.std(out, axis=axes)


@partial(jax.jit, static_argnames=("noise", "iterations", "shape"))
def _chain(rng, bank, value, noise: NoiseModel, iterations: int, shape: tuple[int, ...]):
    m = Machine.create(noise, shape, rng, bank=bank)
    s = m.load(m.init(), "A", value)
    s, inp = m.readout(s, "A")

    def step(st, _):
        st = kernel(m, st)
        st, out = m.readout(st, "A")
        return st, _stats(inp, out)

    _, (bias, std) = jax.lax.scan(step, s, None, length=iterations)
    return jnp.std(inp, axis=tuple(range(1, inp.ndim))), bias, std   # (reps,), (n, reps) x 2


@partial(jax.jit, static_argnames=("noise", "shape"))
def _restart(rng, bank, value, n, noise: NoiseModel, shape: tuple[int, ...]):
    m = Machine.create(noise, shape, rng, bank=bank)
    s = m.load(m.init(), "A", value)
    s, inp = m.readout(s, "A")
    s = jax.lax.fori_loop(0, n, lambda _, st: kernel(m, st), s)
    s, out = m.readout(s, "A")
    b, sd = _stats(inp, out)
    return jnp.std(inp, axis=tuple(range(1, inp.ndim))), b, sd


def run(noise: NoiseModel, values, iterations: int = 32, repetitions: int = 100, *,
        seed: int = 0, array_shape: tuple[int, ...] = ARRAY_SHAPE, chunk: int = 25,
        independent: bool = False) -> dict:
    """The protocol on the simulated chip: {"<v>": {"bias": [iterations floats],
    "std": [iterations + 1 floats]}} (units, the measurement's definitions).

    values: input values in the register range; repetitions run `chunk` at a time.
    """
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"noise must be a NoiseModel, got {type(noise).__name__}")
    if iterations < 1 or repetitions < 1 or chunk < 1:
        raise ValueError(f"iterations, repetitions and chunk must be >= 1, got {iterations}, "
                         f"{repetitions}, {chunk}")
    lo, hi = noise.saturation if noise.saturation is not None else (-np.inf, np.inf)
    out = {}
    for vi, value in enumerate(values):
        v = float(value)
        if not np.isfinite(v) or not lo <= v <= hi:
            raise ValueError(f"input value {value!r} is outside the register range "
                             f"{lo:g} .. {hi:g}")
        std0, bias, std = [], [], []
        for c, start in enumerate(range(0, repetitions, chunk)):
            shape = (min(chunk, repetitions - start),) + tuple(array_shape)
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), vi), c)
            bank = (draw_bank(noise, shape, bank_key(key))
                    if noise.random and noise.source == "bank" else None)
            rng = key if noise.random else None
            if independent:
                parts = [_restart(rng, bank, jnp.float32(v), jnp.int32(n), noise, shape)
                         for n in range(1, iterations + 1)]
                s0 = parts[0][0]
                b = jnp.stack([p[1] for p in parts])
                sd = jnp.stack([p[2] for p in parts])
            else:
                s0, b, sd = _chain(rng, bank, jnp.float32(v), noise, iterations, shape)
            std0.append(np.asarray(s0))
            bias.append(np.asarray(b))
            std.append(np.asarray(sd))
        bias = np.concatenate(bias, 1).mean(1)
        std = np.concatenate([np.concatenate(std0)[None], np.concatenate(std, 1)]).mean(1)
        out[_key(v)] = {"bias": [float(x) for x in bias], "std": [float(x) for x in std]}
    return out


def _key(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def load_measurement(path) -> dict:
    """The measured curves of `scamp5_noise_accumulation.json`: {"<v>": {"bias", "std"}}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"noise accumulation measurement not found: {path}")
    try:
        d = json.loads(path.read_text())
        values = d["values"]
        return {k: {"bias": list(map(float, v["bias"])), "std": list(map(float, v["std"]))}
                for k, v in values.items()}
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a noise accumulation measurement ({e!r}): expected "
                         f"{{'values': {{'<v>': {{'bias': [...], 'std': [...]}}}}}}") from None


def relative_errors(sim: dict, measured: dict) -> dict:
    """Per value present in both: mean |sim - real| / mean |real| over n = 1..N, for the bias
    curve and the std curve (std[1..N]; std[0], the input readouts, reported apart)."""
    out = {}
    for k in sim:
        if k not in measured:
            continue
        sb, rb = np.asarray(sim[k]["bias"]), np.asarray(measured[k]["bias"])
        ss, rs = np.asarray(sim[k]["std"]), np.asarray(measured[k]["std"])
        n = min(len(sb), len(rb))
        m = min(len(ss), len(rs))
        out[k] = {"bias": float(np.abs(sb[:n] - rb[:n]).mean() / np.abs(rb[:n]).mean()),
                  "std": float(np.abs(ss[1:m] - rs[1:m]).mean() / np.abs(rs[1:m]).mean()),
                  "std0_sim": float(ss[0]), "std0_real": float(rs[0])}
    return out


def targets_met(errors: dict) -> bool:
    return all(e["bias"] <= BIAS_TARGET and e["std"] <= STD_TARGET for e in errors.values())
