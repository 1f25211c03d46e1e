"""A model of the SCAMP-5 sensor-processor and the PixelRNN programs that run on it.

    readout = scamp5.simulate(variables, video, config, rng=jax.random.key(0))   # noisy
    ideal = scamp5.simulate(variables, video, config, noise=scamp5.NoiseModel.ideal())
    chip = scamp5.simulate(variables, video, config, program="chip", rng=key)   # calibrated
    scamp5.export_weight_planes(variables, "weights_dir", config)

`machine` holds the register file and the instruction set, `noise` its analog
non-idealities; `ideal_program` is the paper's program on the machine, `chip_program` the
authors' program as it really runs on the chip (what the real sensor reads out); `programs`
the one entry point over both; `planes` the weight planes the programs load; `layout` where
each kernel lives on the block grid; `requirements` which models the programs run;
`calibrate` fits the chip program's non-idealities to real readouts and `agreement` scores
the programs against them.
"""
from pixelrnn_jax.sensor.scamp5 import (
                                        agreement,
                                        calibrate,
                                        chip_program,
                                        ideal_program,
                                        layout,
                                        machine,
                                        noise,
                                        planes,
                                        programs,
                                        requirements,
)
from pixelrnn_jax.sensor.scamp5.calibrate import load_calibration, save_calibration
from pixelrnn_jax.sensor.scamp5.chip_program import ChipFacts, ChipNoise
from pixelrnn_jax.sensor.scamp5.ideal_program import ProgramOptions, model_noise
from pixelrnn_jax.sensor.scamp5.machine import Machine, State, from_image, to_image
from pixelrnn_jax.sensor.scamp5.noise import NoiseModel
from pixelrnn_jax.sensor.scamp5.planes import (
                                        WeightPlanes,
                                        export_weight_planes,
                                        import_weight_planes,
                                        weight_planes,
)
from pixelrnn_jax.sensor.scamp5.programs import PROGRAMS, simulate
from pixelrnn_jax.sensor.scamp5.requirements import check_fits

__all__ = [
    "simulate", "PROGRAMS", "check_fits", "Machine", "NoiseModel", "State", "ProgramOptions",
    "WeightPlanes", "ChipFacts", "ChipNoise", "model_noise", "weight_planes",
    "export_weight_planes", "import_weight_planes", "to_image", "from_image",
    "load_calibration", "save_calibration", "agreement", "calibrate", "chip_program",
    "ideal_program", "layout", "machine", "noise", "planes", "programs", "requirements",
]
