"""A model of the SCAMP-5 sensor-processor and the PixelRNN program that runs on it.

    readout = scamp5.simulate(variables, video, config, rng=jax.random.key(0))
    ideal = scamp5.simulate(variables, video, config, noise=scamp5.NoiseModel.ideal())
    scamp5.export_weight_planes(variables, "weights_dir", config)

`machine` holds the register file, the instruction set and the noise model; `program` the
PixelRNN program; `export` the weight planes the program loads; `layout` where each kernel
lives on the block grid.
"""
from pixelrnn_jax.scamp5 import layout, machine, program
from pixelrnn_jax.scamp5.export import (WeightPlanes, export_weight_planes, import_weight_planes,
                                        weight_planes)
from pixelrnn_jax.scamp5.machine import Machine, NoiseModel, State, from_image, to_image
from pixelrnn_jax.scamp5.program import ProgramOptions, simulate

__all__ = [
    "Machine", "NoiseModel", "State", "ProgramOptions", "WeightPlanes",
    "simulate", "weight_planes", "export_weight_planes", "import_weight_planes",
    "to_image", "from_image", "layout", "machine", "program",
]
