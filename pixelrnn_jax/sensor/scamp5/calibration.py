"""Calibrating the SCAMP-5 error model (`noise.NoiseModel`) against real measurements.

Three sources, from three chips, so the per-instruction behaviour (shared) is kept apart
from each chip's fixed pattern and readout (a chip profile each):

(a) supplement Fig. S4 (`figure_s4`): writing 10 through the DAC reads back 10.73 +- 2.90
    over 1,000 readouts of the 256 x 256 array. Sets chip (a)'s DAC gain (the mean, after the
    write's own loss; a DAC's gain is a chip's: the recordings' chip fails a single
    product's tie, which a gain of 1.07 would pass) and its readout offset spread (what the
    std leaves after the shared temporal noise and chip (b)'s readout noise: one write and
    one readout cannot tell a write's fixed pattern from the readout's).
(b) error accumulation on a SCAMP-5d (`scamp5_noise_accumulation.json`, `accumulation`):
    bias and std after n = 1..32 applications of {div2, copy, add} to uniform inputs 0, 10,
    60 and 120. Sets the value-dependent loss per bus transfer (sign-dependent), div2's
    offset, and chip (b)'s fixed pattern (per-pixel write offset and sign-dependent gain,
    per-pixel DAC gain) and readout noise (`fit_accumulation`).
(c) the 810 real PixelRNN readouts and the 45 videos whose frames are held
    (`recordings_fit`): the temporal noise per bus transfer jointly with (b), the readout
    conversion of the recordings' chip, its measured per-pixel offset map.

The instruction table is tied through the SCAMP-5 kernel API's bus transfers
(`noise.BUS_OPERATIONS`): an instruction of k transfers keeps (1 - loss)^k of its result
and adds temporal noise std * sqrt(k); a constant charge injection cancels between the two
inverting transfers of mov, add, sub, neg, res and a neighbour transfer, so only div2 (five
transfers, two of them halving) carries an offset. `calibration_file` writes all of it,
versioned, with the fit's figures.
"""
from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import least_squares

from pixelrnn_jax.sensor.scamp5.noise import (
                                              BUS_OPERATIONS,
                                              INSTRUCTIONS,
                                              MEASURED_INCREMENT,
                                              MEASURED_MEAN,
                                              MEASURED_STD,
                                              SCHEMA,
                                              VERSION,
                                              ChipPattern,
                                              InstructionError,
                                              NoiseModel,
                                              Readout,
)

__all__ = ["SharedErrors", "instruction_table", "fit_accumulation", "figure_s4",
           "calibration_file", "QUANTIZATION_VAR", "accumulation_model"]

QUANTIZATION_VAR = 1.0 / 12.0   # rounding to the 1-unit 8-bit code


@dataclasses.dataclass(frozen=True)
class SharedErrors:
    """The per-bus-transfer behaviour every chip shares (see the module docstring).

    loss, loss_negative: fraction of a result >= 0 / < 0 lost per bus transfer (b).
    div2_offset: units div2 subtracts (b). bus_std: temporal noise per transfer (b, c).
    """

    loss: float
    loss_negative: float
    div2_offset: float
    bus_std: float

    def table(self) -> dict:
        return instruction_table(self)


def instruction_table(shared: SharedErrors) -> dict[str, InstructionError]:
    """Every instruction's error from the per-transfer behaviour (module docstring)."""
    out = {}
    for name in INSTRUCTIONS:
        k = BUS_OPERATIONS[name]
        out[name] = InstructionError(
            offset=shared.div2_offset if name == "div2" else 0.0,
            loss=float(1.0 - (1.0 - shared.loss) ** k),
            loss_negative=float(1.0 - (1.0 - shared.loss_negative) ** k),
            std=float(shared.bus_std * np.sqrt(k)))
    return out


# ------------------------------------------------------------------------------ (b)

# parameters of the accumulation fit, in this order, and their bounds
_NAMES = ("loss", "loss_negative", "div2_offset", "bus_std", "offset_std", "gain_std",
          "gain_std_negative", "dac_gain_std", "readout_std")
_LOW = (0.0, 0.0, -10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
_HIGH = (0.05, 0.05, 10.0, 2.0, 3.0, 0.05, 0.05, 0.1, 3.0)


def _keep(loss, k):
    return (1.0 - loss) ** k


@partial(jax.jit, static_argnames=("iterations",))
def _surrogate(theta, dac_gain, values, fields, normals, iterations: int):
    """The protocol's statistics on `fields` (6 P) fixed-pattern normals and `normals`
    (R, steps, P) temporal normals: the machine's equations (one write = one instruction,
    per-register pattern fields of A and F), vectorized over values. -> bias (V, n), std
    (V, n + 1)."""
    lp, ln, off, sb, so, sg, sgn, sd, sr = (theta[i] for i in range(9))
    ga, gf, oa, of, dz, _ = fields
    step = iter(range(normals.shape[1]))

    def write(r, k, g, o, offset=0.0):
        keep = jnp.where(r >= 0, _keep(lp, k) + sg * g, _keep(ln, k) + sgn * g)
        z = normals[:, next(step)][None]
        return jnp.clip(r * keep - offset + so * o + sb * jnp.sqrt(k) * z, -128.0, 127.0)

    def readout(a):
        return jnp.clip(jnp.round(a + sr * normals[:, next(step)][None]), -127.0, 128.0)

    dac = values[:, None, None] * dac_gain * (1.0 + sd * dz)[None, None]
    a = write(jnp.broadcast_to(dac, (len(values),) + normals[:, 0].shape), 2, ga, oa)
    inp = readout(a)
    bias, std = [], [jnp.std(inp, -1).mean(-1)]
    for _ in range(iterations):
        a = write(0.5 * a, BUS_OPERATIONS["div2"], ga, oa, off)
        f = write(a, BUS_OPERATIONS["copy"], gf, of)
        a = write(a + f, BUS_OPERATIONS["add"], ga, oa)
        out = readout(a)
        bias.append(jnp.mean(inp - out, (-2, -1)))
        std.append(jnp.std(out, -1).mean(-1))
    return jnp.stack(bias, 1), jnp.stack(std, 1)


def _dac_gain(shared_loss: float) -> float:
    # Fig. S4's mean is a write of 10 read back: the DAC's gain after the write's own loss
    return MEASURED_MEAN / MEASURED_INCREMENT / _keep(shared_loss, BUS_OPERATIONS["load"])


def fit_accumulation(measured: dict, *, bus_std: float | None = None, dac_gain: float = 1.0,
                     seed: int = 0, pixels: int = 4096, repetitions: int = 4) -> dict:
    """Least-squares fit of the shared losses, div2's offset and chip (b)'s pattern and
    readout noise to the measured curves (`accumulation.load_measurement`), every curve
    point n = 1..32 and the input readouts' std (except where the measurement's notes flag
    the inputs: value 60) weighted by the curve's mean level, a robust loss for the notes'
    anomalies. `bus_std` fixes the temporal noise per transfer (None: fitted too);
    `dac_gain`: the chip's DAC gain (chip (b)'s is not measured: nominal 1).

    Returns {"shared": SharedErrors, "pattern": ChipPattern params, "readout_std",
    "dac_gain", "theta", "cost"}.
    """
    keys = sorted(measured, key=float)
    values = jnp.asarray([float(k) for k in keys], jnp.float32)
    bias = np.asarray([measured[k]["bias"] for k in keys])
    std = np.asarray([measured[k]["std"] for k in keys])
    n = bias.shape[1]
    rng = np.random.default_rng(seed)
    fields = jnp.asarray(rng.standard_normal((6, pixels)), jnp.float32)
    normals = jnp.asarray(rng.standard_normal((repetitions, 2 + 4 * n, pixels)), jnp.float32)
    flagged = np.asarray([std[i, 0] > 4 * np.median(std[:, 0]) for i in range(len(keys))])
    fixed = {} if bus_std is None else {3: float(bus_std)}
    free = [i for i in range(len(_NAMES)) if i not in fixed]

    def full(x):
        theta = np.empty(len(_NAMES))
        theta[free] = x
        for i, v in fixed.items():
            theta[i] = v
        return theta

    def residuals(x):
        theta = full(x)
        b, s = _surrogate(jnp.asarray(theta, jnp.float32), jnp.float32(dac_gain), values,
                          fields, normals, n)
        b, s = np.asarray(b), np.asarray(s)
        rb = (b - bias) / np.abs(bias).mean(1, keepdims=True)
        rs = (s[:, 1:] - std[:, 1:]) / std[:, 1:].mean(1, keepdims=True)
        r0 = np.where(flagged, 0.0, (s[:, 0] - std[:, 0]) / std[:, 0])
        return np.concatenate([rb.ravel(), rs.ravel(), r0])

    x0 = np.asarray([0.006, 0.006, 1.6, 0.2, 0.2, 0.002, 0.008, 0.02, 1.0])[free]
    lo, hi = np.asarray(_LOW)[free], np.asarray(_HIGH)[free]
    fit = least_squares(residuals, np.clip(x0, lo, hi), bounds=(lo, hi), loss="soft_l1",
                        f_scale=0.05, diff_step=1e-3, max_nfev=200)
    theta = full(fit.x)
    p = dict(zip(_NAMES, (float(v) for v in theta)))
    return {"shared": SharedErrors(p["loss"], p["loss_negative"], p["div2_offset"],
                                   p["bus_std"]),
            "pattern": {"offset_std": p["offset_std"], "gain_std": p["gain_std"],
                        "gain_std_negative": p["gain_std_negative"],
                        "dac_gain_std": p["dac_gain_std"]},
            "readout_std": p["readout_std"], "dac_gain": float(dac_gain),
            "theta": p, "cost": float(fit.cost)}


def accumulation_model(fit: dict, seed: int = 1) -> NoiseModel:
    """Chip (b)'s NoiseModel from `fit_accumulation`: the shared table, its pattern and its
    readout (8-bit code, the fitted noise)."""
    return NoiseModel(instructions=fit["shared"].table(), dac_gain=fit["dac_gain"],
                      dac_offset=0.0, pattern=ChipPattern(seed=seed, **fit["pattern"]),
                      readout=Readout(std=fit["readout_std"], quantize=True),
                      chip="noise_accumulation", saturation=(-128.0, 127.0))


# ------------------------------------------------------------------------------ (a)


def figure_s4(shared: SharedErrors, readout_std: float) -> dict:
    """Chip (a) of Fig. S4: the readout offset spread that, with the shared temporal noise
    of the DAC write, the readout noise `readout_std` (chip (b)'s, a typical readout) and the
    code's rounding, gives the measured std 2.90; and the model's read-back mean and std."""
    write = instruction_table(shared)["load"]
    var = write.std ** 2 + readout_std ** 2 + QUANTIZATION_VAR
    spread = float(np.sqrt(max(MEASURED_STD ** 2 - var, 0.0)))
    return {"dac": {"gain": _dac_gain(shared.loss), "offset": 0.0},
            "readout": {"std": float(readout_std), "offset_std": spread, "quantize": True},
            "mean": MEASURED_MEAN, "std": float(np.sqrt(var + spread ** 2))}


# ------------------------------------------------------------------------------ the file


def calibration_file(shared: SharedErrors, dac_gain: float, chips: dict, default_chip: str,
                     provenance: dict) -> dict:
    """The contents of a calibration file: schema, version, the instruction table, the DAC,
    the chip profiles ({name: {"pattern": {...}, "readout": {...}, "measurement": str}}) and
    how each figure was obtained (`provenance`)."""
    if default_chip not in chips:
        raise ValueError(f"default chip {default_chip!r} is not among {sorted(chips)}")
    return {
        "schema": SCHEMA, "version": VERSION,
        "units": "analog units (one +-1 product of the PixelRNN program = 10); losses are "
                 "fractions per execution; stds are Gaussian standard deviations in units",
        "instructions": {k: dataclasses.asdict(v) for k, v in shared.table().items()},
        "shared": dataclasses.asdict(shared),
        "bus_operations": dict(BUS_OPERATIONS),
        "dac": {"gain": float(dac_gain), "offset": 0.0},
        "saturation": [-128.0, 127.0],
        "chips": chips, "default_chip": default_chip,
        "provenance": provenance,
    }
