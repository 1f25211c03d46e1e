"""A model of the SCAMP-5 sensor-processor and the PixelRNN program that runs on it.

    readout = scamp5.simulate(variables, video, config, rng=jax.random.key(0))
    ideal = scamp5.simulate(variables, video, config, noise=scamp5.NoiseModel.ideal())
    scamp5.export_weight_planes(variables, "weights_dir", config)

`machine` holds the register file, the instruction set and the noise model; `program` the
PixelRNN program; `export` the weight planes the program loads; `layout` where each kernel
lives on the block grid. `chip` is the "chip" mode: the authors' program as it really runs
on the SCAMP-5 (what the real sensor reads out), `calibrate` fits its non-idealities to real
readouts, `sim2real` scores the modes against them.

    o = scamp5.chip.simulate("cam_noise_iw10.txt", frames)   # (b t/16 64 64)
"""
from pixelrnn_jax.scamp5 import calibrate, chip, layout, machine, program, sim2real
from pixelrnn_jax.scamp5.calibrate import load_calibration, save_calibration
from pixelrnn_jax.scamp5.chip import ChipFacts, ChipNoise
from pixelrnn_jax.scamp5.export import (WeightPlanes, export_weight_planes, import_weight_planes,
                                        weight_planes)
from pixelrnn_jax.scamp5.machine import Machine, NoiseModel, State, from_image, to_image
from pixelrnn_jax.scamp5.program import ProgramOptions, model_noise, simulate

__all__ = [
    "Machine", "NoiseModel", "State", "ProgramOptions", "WeightPlanes",
    "simulate", "model_noise", "weight_planes", "export_weight_planes", "import_weight_planes",
    "to_image", "from_image", "layout", "machine", "program",
    "chip", "calibrate", "sim2real", "ChipFacts", "ChipNoise", "load_calibration",
    "save_calibration",
]
