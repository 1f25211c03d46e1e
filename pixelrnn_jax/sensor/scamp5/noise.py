"""The analog error model of the SCAMP-5 model (`NoiseModel`) and the noise bank its
instructions read.

Every analog instruction of `machine.Machine` turns its exact result r (units) into

    out = r * (1 - loss(r) + G_dst(p)) - offset + O_dst(p) + std * z + column_std * z_col

then saturates it (`saturation`). Per instruction (`InstructionError`, shared by every chip
unless a calibration file gives a chip its own fields): `offset` (units, charge injection),
`loss` (fraction of a result >= 0 lost: leakage) and `loss_negative` (for results < 0), `std`
(temporal Gaussian noise, units, fresh at every execution), `column_std` (units, one draw per
column and execution). A shift by n pixels is n neighbour transfers ("transfer"). DAC writes
(`load`, `add_const`) come out `dac_gain * v + dac_offset` times the per-pixel DAC gain.
Per chip (`ChipPattern`, drawn once from the chip's `seed`, the same in every run): the
per-pixel offset O_R and gain G_R of writes into each register R, the per-pixel DAC gain.
The readout conversion (`Readout`, per chip): units = zero + gain * value + pixel offset +
temporal and column noise, rounded to the 8-bit code (1 unit) and clipped to its range.

The default `NoiseModel()` is the shipped calibration (`calibration.json` beside this
module, written by `experiments/calibrate_sensor.py`; `calibration` documents which
measurement sets each parameter). `NoiseModel.ideal()` switches every source off.

The Gaussian samples come from a bank of i.i.d. N(0, 1) values drawn once per run from the
run's key (`source="bank"`): each draw reads, for every video, a window of the bank at a
random offset with a random sign, hashed from the run's key, the draw's count and the
video's index. Every sample is exactly N(0, std^2); two windows share values only where they
overlap, and then (unless their offsets coincide) at different pixels. `source="fresh"`
draws new normals every time instead: the same statistics, slower on a CPU.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp

__all__ = ["NoiseModel", "InstructionError", "ChipPattern", "Readout", "INSTRUCTIONS",
           "BUS_OPERATIONS", "SCHEMA", "VERSION", "DEFAULT_CALIBRATION", "MEASURED_INCREMENT",
           "MEASURED_MEAN", "MEASURED_STD", "SOURCES", "read_calibration", "model_dict",
           "bank_key", "draw_bank", "bank_normals", "hashed_normals", "mix32", "systematic"]

Array = jax.Array

SOURCES = ("bank", "fresh")
# The analog instructions of the machine. A SCAMP-5 kernel-API macro is a sequence of bus
# transfers (each negates the sum of its sources): mov, add, sub, neg, res and a neighbour
# transfer take 2, diva 5 (two of them halving); a DAC write is a transfer from the IN
# register, `add_const` one add of a DAC-written constant.
INSTRUCTIONS = ("load", "add_const", "add", "sub", "neg", "copy", "div2", "reset", "transfer")
BUS_OPERATIONS = {"load": 2, "add_const": 2, "add": 2, "sub": 2, "neg": 2, "copy": 2,
                  "div2": 5, "reset": 2, "transfer": 2}

# Supplement Fig. S4: writing 10 units reads back with mean 10.73 and std 2.90.
MEASURED_INCREMENT = 10.0
MEASURED_MEAN = 10.73
MEASURED_STD = 2.90

SCHEMA = "pixelrnn_jax.scamp5.calibration"
# Version 2: a chip profile may set its own instruction fields (version 1 could not).
VERSION = 2
DEFAULT_CALIBRATION = Path(__file__).with_name("calibration.json")


def _number(owner: str, name: str, value, *, low: float | None = 0.0, high=None,
            strict_low: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{owner}.{name} must be finite, got {value!r}")
    if low is not None and (v <= low if strict_low else v < low):
        raise ValueError(f"{owner}.{name} must be {'>' if strict_low else '>='} {low}, got {v}")
    if high is not None and v >= high:
        raise ValueError(f"{owner}.{name} must be < {high}, got {v}")
    return v


def _check_fields(obj, owner: str, bounds: dict) -> None:
    for name, kw in bounds.items():
        value = getattr(obj, name)
        if value is not None:
            object.__setattr__(obj, name, _number(owner, name, value, **kw))


@dataclasses.dataclass(frozen=True)
class InstructionError:
    """The error of one analog instruction (see the module docstring), in units.

    Attributes:
      offset: units subtracted from every result.
      loss: fraction of a result >= 0 lost per execution.
      loss_negative: fraction of a result < 0 lost per execution (None: `loss`).
      std: temporal Gaussian noise (units) added at every execution.
      column_std: temporal noise (units) shared by a column's pixels in one execution.
    """

    offset: float = 0.0
    loss: float = 0.0
    loss_negative: float | None = None
    std: float = 0.0
    column_std: float = 0.0

    def __post_init__(self):
        _check_fields(self, "InstructionError", {
            "offset": {"low": None}, "loss": {"low": -1.0, "high": 1.0},
            "loss_negative": {"low": -1.0, "high": 1.0}, "std": {}, "column_std": {}})

    @property
    def negative_loss(self) -> float:
        return self.loss if self.loss_negative is None else self.loss_negative

    @property
    def systematic_free(self) -> bool:
        return self.offset == 0 and self.loss == 0 and self.negative_loss == 0


@dataclasses.dataclass(frozen=True)
class ChipPattern:
    """A chip's fixed pattern, drawn once from `seed` (the same in every run).

    Attributes:
      seed: the chip's seed.
      offset_std: std (units) of the per-pixel offset O_R of a write into register R.
      gain_std: std of the per-pixel relative gain G_R of a write of a result >= 0.
      gain_std_negative: the same for results < 0 (None: `gain_std`); one field per
        register, scaled by one std or the other.
      dac_gain_std: std of the per-pixel relative gain of DAC-written values.
    """

    seed: int = 0
    offset_std: float = 0.0
    gain_std: float = 0.0
    gain_std_negative: float | None = None
    dac_gain_std: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "seed", int(self.seed))
        _check_fields(self, "ChipPattern", {"offset_std": {}, "gain_std": {},
                                            "gain_std_negative": {}, "dac_gain_std": {}})

    @property
    def negative_gain_std(self) -> float:
        return self.gain_std if self.gain_std_negative is None else self.gain_std_negative

    @property
    def active(self) -> bool:
        return self.offset_std > 0 or self.gain_std > 0 or self.negative_gain_std > 0


@dataclasses.dataclass(frozen=True)
class Readout:
    """A chip's readout conversion: analog units -> read-out units (the 8-bit code - 127).

    Attributes:
      gain, zero: read-out units = zero + gain * value (+ the terms below).
      std: temporal noise (units) of every read pixel.
      column_std: temporal noise (units) shared by a column in one readout.
      offset_std: std (units) of a per-pixel fixed offset drawn from the chip's seed.
      offset_map: a measured per-pixel offset (units), a .npy file of the sensor image's
        shape (256 x 256) added to the drawn one; None for none.
      quantize: round to the 8-bit code and clip to its range (-127 .. 128 units).
    """

    gain: float = 1.0
    zero: float = 0.0
    std: float = 0.0
    column_std: float = 0.0
    offset_std: float = 0.0
    offset_map: str | None = None
    quantize: bool = False

    def __post_init__(self):
        _check_fields(self, "Readout", {"gain": {"strict_low": True}, "zero": {"low": None},
                                        "std": {}, "column_std": {}, "offset_std": {}})
        if self.offset_map is not None:
            object.__setattr__(self, "offset_map", str(self.offset_map))
        object.__setattr__(self, "quantize", bool(self.quantize))

    @property
    def ideal(self) -> bool:
        return (self.gain == 1 and self.zero == 0 and self.std == 0 and self.column_std == 0
                and self.offset_std == 0 and self.offset_map is None and not self.quantize)


def _default(part: str):
    return lambda: _DEFAULT[part]


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """The analog error model; `NoiseModel()` is the shipped calibration.

    Attributes:
      instructions: (name, InstructionError) for every name of `INSTRUCTIONS`.
      dac_gain, dac_offset: a DAC-written value v comes out `dac_gain * v + dac_offset`.
      pattern: the chip's fixed pattern. readout: its readout conversion.
      chip: the name of the chip profile (informational).
      saturation: (low, high) range of the analog registers, or None for no clipping.
      decay: fraction of every analog value lost per `Machine.tick` (one frame).
      source: "bank" (fast, see the module docstring) or "fresh" normals per draw.
      bank_factor: the bank holds `bank_factor` times the samples of one video's plane.
    """

    instructions: tuple = dataclasses.field(default_factory=_default("instructions"))
    dac_gain: float = dataclasses.field(default_factory=_default("dac_gain"))
    dac_offset: float = dataclasses.field(default_factory=_default("dac_offset"))
    pattern: ChipPattern = dataclasses.field(default_factory=_default("pattern"))
    readout: Readout = dataclasses.field(default_factory=_default("readout"))
    chip: str = dataclasses.field(default_factory=_default("chip"))
    saturation: tuple[float, float] | None = dataclasses.field(
        default_factory=_default("saturation"))
    decay: float = 0.0
    source: str = "bank"
    bank_factor: int = 8

    def __post_init__(self):
        table = dict(self.instructions)
        unknown = sorted(set(table) - set(INSTRUCTIONS))
        if unknown:
            raise ValueError(f"unknown analog instruction(s) {unknown}: the machine has "
                             f"{list(INSTRUCTIONS)}")
        for k, v in table.items():
            if not isinstance(v, InstructionError):
                raise TypeError(f"NoiseModel.instructions[{k!r}] must be an InstructionError, "
                                f"got {type(v).__name__}")
        object.__setattr__(self, "instructions", tuple(
            (k, table.get(k, InstructionError())) for k in INSTRUCTIONS))
        _check_fields(self, "NoiseModel", {"dac_gain": {"strict_low": True},
                                           "dac_offset": {"low": None},
                                           "decay": {"high": 1.0}})
        if not isinstance(self.pattern, ChipPattern) or not isinstance(self.readout, Readout):
            raise TypeError("NoiseModel.pattern must be a ChipPattern and readout a Readout")
        if self.source not in SOURCES:
            raise ValueError(f"NoiseModel.source must be one of {SOURCES}, got {self.source!r}")
        if int(self.bank_factor) < 1:
            raise ValueError(f"NoiseModel.bank_factor must be >= 1, got {self.bank_factor}")
        if self.saturation is not None:
            lo, hi = (_number("NoiseModel", "saturation", v, low=None) for v in self.saturation)
            if not lo < hi:
                raise ValueError(f"NoiseModel.saturation must be (low, high) with low < high, "
                                 f"got {self.saturation}")
            object.__setattr__(self, "saturation", (lo, hi))

    # ------------------------------------------------------------------------ construction

    @classmethod
    def ideal(cls, saturation: tuple[float, float] | None = (-128.0, 127.0)) -> "NoiseModel":
        """Every error source off: exact instructions, unit DAC, no pattern, ideal readout.

        The registers still saturate at `saturation` (pass None to lift the limit).
        """
        return cls(instructions=(), dac_gain=1.0, dac_offset=0.0, pattern=ChipPattern(),
                   readout=Readout(), chip="ideal", saturation=saturation)

    def dac_write(self, value, plane=None) -> Array:
        """What the DAC writes for `value`: dac_gain * v + dac_offset, times the chip's
        per-pixel DAC gain `plane` (`patterns.dac_plane`; None: uniform)."""
        v = jnp.asarray(value, jnp.float32)
        if self.dac_gain != 1.0:
            v = v * jnp.float32(self.dac_gain)
        if self.dac_offset:
            v = v + jnp.float32(self.dac_offset)
        return v if plane is None else v * plane

    @classmethod
    def from_calibration(cls, path=None, chip: str | None = None, **changes) -> "NoiseModel":
        """The model of a calibration file (default: the shipped one) for one of its chips
        (default: the file's `default_chip`)."""
        return cls(**{**_model_fields(read_calibration(path), chip), **changes})

    @classmethod
    def named(cls, calibration=None) -> "NoiseModel":
        """The error model a flag names: "default" or None (the shipped calibration), "ideal"
        (`ideal()`) or the path of a calibration file."""
        return cls.ideal() if calibration == "ideal" else cls.from_calibration(calibration)

    def replace(self, **changes) -> "NoiseModel":
        return dataclasses.replace(self, **changes)

    def instruction(self, name: str) -> InstructionError:
        for k, v in self.instructions:
            if k == name:
                return v
        raise ValueError(f"unknown analog instruction {name!r}: the machine has "
                         f"{list(INSTRUCTIONS)}")

    def with_instructions(self, **errors: InstructionError) -> "NoiseModel":
        return self.replace(instructions=tuple((k, errors.get(k, v))
                                               for k, v in self.instructions))

    def scaled(self, temporal: float = 1.0, systematic: float = 1.0,
               pattern: float = 1.0) -> "NoiseModel":
        """The model with every temporal std (the instructions' and the readout's), every
        systematic offset and loss, and the chip's fixed pattern multiplied by the given
        factors (calibration grids)."""
        errs = {k: dataclasses.replace(
            v, std=v.std * temporal, column_std=v.column_std * temporal,
            offset=v.offset * systematic, loss=v.loss * systematic,
            loss_negative=None if v.loss_negative is None else v.loss_negative * systematic)
            for k, v in self.instructions}
        p, r = self.pattern, self.readout
        return self.replace(instructions=tuple(errs.items()), readout=dataclasses.replace(
            r, std=r.std * temporal, column_std=r.column_std * temporal),
            pattern=dataclasses.replace(
            p, offset_std=p.offset_std * pattern, gain_std=p.gain_std * pattern,
            gain_std_negative=None if p.gain_std_negative is None
            else p.gain_std_negative * pattern, dac_gain_std=p.dac_gain_std * pattern))

    # ------------------------------------------------------------------------ properties

    @property
    def random(self) -> bool:
        """Whether a run needs a PRNG key (some temporal noise is on)."""
        r = self.readout
        return (any(v.std > 0 or v.column_std > 0 for _, v in self.instructions)
                or r.std > 0 or r.column_std > 0)

    @property
    def dac_exact(self) -> bool:
        return self.dac_gain == 1 and self.dac_offset == 0 and self.pattern.dac_gain_std == 0


# ------------------------------------------------------------------------------ error math


def systematic(err: InstructionError, r: Array, planes=(None, None, None)) -> Array:
    """The instruction's deterministic error on exact results r: loss, offset and the
    destination register's per-pixel planes (gain of results >= 0, gain of results < 0,
    offset; `pattern_planes`, None where off)."""
    gain, gain_neg, offset = planes
    if err.systematic_free and gain is None and gain_neg is None and offset is None:
        return r
    signed = err.loss != err.negative_loss or (gain is not gain_neg)
    if signed:
        up = jnp.float32(1.0 - err.loss) + (0.0 if gain is None else gain)
        down = jnp.float32(1.0 - err.negative_loss) + (0.0 if gain_neg is None else gain_neg)
        keep = jnp.where(r >= 0, up, down)
    else:
        keep = 1.0 - err.loss if gain is None else jnp.float32(1.0 - err.loss) + gain
    out = r * keep if not (isinstance(keep, float) and keep == 1.0) else r
    if err.offset:
        out = out - jnp.float32(err.offset)
    if offset is not None:
        out = out + offset
    return out


# ------------------------------------------------------------------------------ the bank


def mix32(x: Array) -> Array:
    """murmur3's 32-bit finalizer: a bijective integer hash."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def hashed_normals(seed: Array, counter: Array) -> Array:
    """Approximately N(0, 1) samples, one per uint32 `counter`, from a counter-based hash
    keyed by `seed` (2,) uint32: the sum of the hash's four bytes, centred and scaled
    (Irwin-Hall of 4 discrete uniforms: exact mean 0 and std 1, range +-3.45, kurtosis 2.7).

    A few integer operations per sample, fused into their consumer, where threefry's
    normals cost 20 ns each on a CPU core: for the tens of millions of per-pixel draws of a
    training step through the chip (`chip_forward`)."""
    h = mix32(mix32(counter ^ seed[0]) + seed[1])
    total = ((h & 255) + ((h >> 8) & 255) + ((h >> 16) & 255) + (h >> 24)).astype(jnp.float32)
    return (total - 510.0) * jnp.float32(1.0 / math.sqrt(4 * (256 ** 2 - 1) / 12))


def bank_key(rng: Array) -> Array:
    """The part of a run's key that draws its noise bank (see `Machine.create`)."""
    return jax.random.split(rng)[1]


def draw_bank(noise: NoiseModel, shape: Sequence[int], key: Array) -> Array:
    """The i.i.d. N(0, 1) bank for planes of `shape` (..., gy, gx, s, s): `bank_factor` times
    the samples of one video's plane, whatever the batch."""
    return jax.random.normal(key, (noise.bank_factor * math.prod(shape[-4:]),), jnp.float32)


def bank_normals(bank: Array, key: Array, count: Array, lead: tuple[int, ...],
                 per_video: tuple[int, ...], std: float) -> Array:
    """std * N(0, 1) of shape lead + per_video from the bank: per video a window at an offset,
    with a sign, hashed from the run's key bits (2,), the draw's count and the video's index.

    A counter-based hash picks each window: a few integer mixes per draw, where a threefry
    split per draw would dominate compile time.
    """
    chunk = math.prod(per_video)
    videos = math.prod(lead)
    m = bank.shape[0]
    if chunk > m:
        raise ValueError(f"noise bank of {m} samples is smaller than a draw of {chunk}")
    base = mix32(key[0] ^ mix32(count + key[1]))
    h = mix32(base + jnp.arange(videos, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9))
    offsets = (h % jnp.uint32(m - chunk + 1)).astype(jnp.int32)
    signs = jnp.where((mix32(h ^ base) & 1) == 1, std, -std).astype(jnp.float32)
    if videos == 1:
        window = jax.lax.dynamic_slice(bank, offsets, (chunk,))
        return (window * signs[0]).reshape(lead + per_video)
    windows = jax.vmap(lambda o: jax.lax.dynamic_slice(bank, (o,), (chunk,)))(offsets)
    return (windows * signs[:, None]).reshape(lead + per_video)


# ------------------------------------------------------------------------------ files


def read_calibration(path=None) -> dict:
    """The checked contents of a calibration file (default: the shipped one)."""
    path = DEFAULT_CALIBRATION if path in (None, "default") else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sensor calibration not found: {path} (write one with "
                                f"experiments/calibrate_sensor.py)")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not a sensor calibration JSON file ({e})") from None
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a sensor calibration: schema "
                         f"{d.get('schema') if isinstance(d, dict) else None!r}, expected "
                         f"{SCHEMA!r}")
    if d.get("version") != VERSION:
        raise ValueError(f"{path} is a calibration of version {d.get('version')!r}; this "
                         f"library reads version {VERSION} (rerun experiments/"
                         f"calibrate_sensor.py)")
    for key in ("instructions", "dac", "chips", "default_chip"):
        if key not in d:
            raise ValueError(f"{path} lacks {key!r}: not a complete calibration")
    d["_dir"] = str(path.parent)
    d["_path"] = str(path)
    return d


def _model_fields(d: dict, chip: str | None) -> dict:
    where = d.get("_path", "calibration")
    chip = d["default_chip"] if chip is None else chip
    if chip not in d["chips"]:
        raise ValueError(f"{where} has no chip {chip!r}: choose one of {sorted(d['chips'])}")
    profile = d["chips"][chip]
    own = profile.get("instructions", {})
    if not isinstance(own, dict):
        raise ValueError(f"{where}: chip {chip!r} instructions must map names to fields")
    unknown = sorted((set(d["instructions"]) | set(own)) - set(INSTRUCTIONS))
    if unknown:
        raise ValueError(f"{where}: unknown analog instruction(s) {unknown}; the machine has "
                         f"{list(INSTRUCTIONS)}")

    def make(cls, values, what):
        names = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(values) - names)
        if extra:
            raise ValueError(f"{where}: unknown {what} field(s) {extra}; expected "
                             f"{sorted(names)}")
        try:
            return cls(**values)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {what}: {e}") from None

    dac = {**d["dac"], **profile.get("dac", {})}   # a chip's own DAC gain where measured
    readout = dict(profile.get("readout", {}))
    if readout.get("offset_map"):
        readout["offset_map"] = str(Path(d.get("_dir", ".")) / readout["offset_map"])
    sat = d.get("saturation", (-128.0, 127.0))
    # the shared per-instruction table, with what this chip's own measurement changed
    table = {k: {**d["instructions"].get(k, {}), **own.get(k, {})} for k in INSTRUCTIONS}
    return {"instructions": tuple((k, make(InstructionError, table[k], f"instruction {k!r}"))
                                  for k in INSTRUCTIONS),
            "dac_gain": _number(where + " dac", "gain", dac.get("gain", 1.0), strict_low=True),
            "dac_offset": _number(where + " dac", "offset", dac.get("offset", 0.0), low=None),
            "pattern": make(ChipPattern, profile.get("pattern", {}), f"chip {chip!r} pattern"),
            "readout": make(Readout, readout, f"chip {chip!r} readout"),
            "chip": chip, "saturation": None if sat is None else tuple(sat)}


def model_dict(noise: NoiseModel) -> dict:
    """The instruction and DAC part of a model as a calibration file stores it."""
    return {"instructions": {k: dataclasses.asdict(v) for k, v in noise.instructions},
            "dac": {"gain": noise.dac_gain, "offset": noise.dac_offset},
            "saturation": None if noise.saturation is None else list(noise.saturation)}


def _load_default() -> dict:
    try:
        return _model_fields(read_calibration(DEFAULT_CALIBRATION), None)
    except FileNotFoundError:   # a tree without the shipped file: the ideal model
        return {"instructions": (), "dac_gain": 1.0, "dac_offset": 0.0,
                "pattern": ChipPattern(), "readout": Readout(), "chip": "ideal",
                "saturation": (-128.0, 127.0)}


_DEFAULT = _load_default()
