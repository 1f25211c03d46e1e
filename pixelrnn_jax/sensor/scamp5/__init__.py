"""A model of the SCAMP-5 sensor-processor and the PixelRNN programs that run on it.

    readout = scamp5.simulate(variables, video, config, rng=jax.random.key(0))   # noisy
    ideal = scamp5.simulate(variables, video, config, noise=scamp5.NoiseModel.ideal())
    chip = scamp5.simulate(w, frames, program="chip", rng=key)        # the machine program
    fast = scamp5.simulate(w, frames, program="chip_fast", rng=key)   # its fast emulation
    scamp5.export_weight_planes(variables, "weights_dir", config)

`machine` holds the register file and the instruction set (`geometry` its planes), `noise`
the error model (per instruction, per chip, the readout; its calibrated default ships as
`calibration.json`, fitted by `calibration` and `recordings_fit`); `ideal_program` is the
paper's program on the machine, `chip_machine` the authors' program as it really runs on
the chip (`chip_facts`), `chip_program` its fast emulation; `programs` the one entry point
over all three; `accumulation` a real chip's error-accumulation protocol; `planes` the
weight planes the programs load; `layout` where each kernel lives on the block grid;
`requirements` which models the programs run; `calibrate` refits the chip's readout to
real readouts per fold and `agreement` scores the programs against them.
"""
from pixelrnn_jax.sensor.scamp5 import (
    accumulation,
    agreement,
    calibrate,
    calibration,
    chip_facts,
    chip_forward,
    chip_machine,
    chip_program,
    geometry,
    ideal_program,
    layout,
    machine,
    noise,
    patterns,
    planes,
    programs,
    recordings_fit,
    requirements,
)
from pixelrnn_jax.sensor.scamp5.chip_facts import ChipFacts
from pixelrnn_jax.sensor.scamp5.ideal_program import ProgramOptions, model_noise
from pixelrnn_jax.sensor.scamp5.machine import Machine, State, from_image, to_image
from pixelrnn_jax.sensor.scamp5.noise import (
    ChipPattern,
    InstructionError,
    NoiseModel,
    Readout,
    read_calibration,
)
from pixelrnn_jax.sensor.scamp5.planes import (
    WeightPlanes,
    export_weight_planes,
    import_weight_planes,
    weight_planes,
)
from pixelrnn_jax.sensor.scamp5.programs import PROGRAMS, simulate
from pixelrnn_jax.sensor.scamp5.requirements import check_fits

__all__ = [
    "simulate", "PROGRAMS", "check_fits", "Machine", "NoiseModel", "InstructionError",
    "ChipPattern", "Readout", "State", "ProgramOptions", "WeightPlanes", "ChipFacts",
    "model_noise", "weight_planes", "export_weight_planes", "import_weight_planes",
    "to_image", "from_image", "read_calibration", "accumulation", "agreement", "calibrate",
    "calibration", "chip_facts", "chip_forward", "chip_machine", "chip_program",
    "geometry", "ideal_program",
    "layout", "machine", "noise", "patterns", "planes", "programs", "recordings_fit",
    "requirements",
]
