"""The one entry point of the SCAMP-5 model: `simulate(weights, video, config, program=...)`.

Every program takes the same arguments and returns readouts in model units; all of them run
on one error model (`NoiseModel`; `noise=None` takes the shipped calibration, a noisy model
needs `rng`):

| program     | what runs                                                 | options          |
|-------------|-----------------------------------------------------------|------------------|
| `ideal`     | the paper's program on the register-level machine         | `ProgramOptions` |
|             | (equals `pixelrnn_jax.encode` with the noise off)         |                  |
| `chip`      | the authors' program as it runs on the chip, on the       | `ChipFacts`      |
|             | machine (`chip_machine`)                                  |                  |
| `chip_fast` | its fast emulation (`chip_program`), pinned to `chip`:    | `ChipFacts`      |
|             | bit for bit with the noise off, in distribution with it   |                  |
"""
from __future__ import annotations

from pixelrnn_jax.core import ModelConfig
from pixelrnn_jax.sensor.scamp5 import chip_machine, chip_program, ideal_program
from pixelrnn_jax.sensor.scamp5.requirements import PROGRAM_NAMES

__all__ = ["PROGRAMS", "simulate"]

PROGRAMS = {"ideal": ideal_program.run, "chip": chip_machine.run, "chip_fast": chip_program.run}
assert tuple(PROGRAMS) == PROGRAM_NAMES


def simulate(weights, video, config: ModelConfig | None = None, *, program: str = "ideal",
             noise=None, rng=None, options=None):
    """Runs `program` on the SCAMP-5 model: (b t H W) -> (b t/K s s) readouts, model units.

    weights: model variables, or the program's own weight form (`WeightPlanes`; for the chip
      programs also `authors_files.OfficialWeights` or a weight file path). video: normalized
      float intensities (the chip programs also take uint8 frames and bool binarized
      frames). config: the model (default `ModelConfig()`, the binary 1-CNN PixelRNN),
      checked to fit the program. noise / options: see the module docstring.
    """
    if program not in PROGRAMS:
        raise ValueError(f"unknown sensor program {program!r}: choose one of {PROGRAM_NAMES}")
    config = ModelConfig() if config is None else config
    return PROGRAMS[program](weights, video, config, noise=noise, rng=rng, options=options)
