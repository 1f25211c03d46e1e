"""Which models the SCAMP-5 programs run: the one check every sensor entry point makes.

    check_fits(config, "ideal")   # the paper's program: binary PixelRNN, plane side % 4 == 0
    check_fits(config, "chip")    # the authors' program as it runs on the chip (and its fast
                                  # emulation "chip_fast"): also one CNN layer, 64 x 64
                                  # frames, a 16-frame readout cycle
"""
from __future__ import annotations

from pixelrnn_jax.core import ModelConfig

__all__ = ["PROGRAM_NAMES", "CHIP_SIDE", "CHIP_CYCLE", "check_fits"]

PROGRAM_NAMES = ("ideal", "chip", "chip_fast")
CHIP_SIDE = 64     # the chip program's frame, block and readout side
CHIP_CYCLE = 16    # frames per readout cycle of the chip program


def check_fits(config: ModelConfig, program: str = "ideal") -> None:
    """Raises a one-line ValueError unless `program` runs the model of `config`."""
    if program not in PROGRAM_NAMES:
        raise ValueError(f"unknown sensor program {program!r}: choose one of {PROGRAM_NAMES}")
    if config.cell != "pixelrnn" or not config.binary:
        raise ValueError(f"the SCAMP-5 program runs the binary PixelRNN; got cell="
                         f"{config.cell!r}, precision={config.precision!r}")
    s = config.plane_size
    if s % 4:
        raise ValueError(f"the SCAMP-5 program needs planes whose side is a multiple of 4, got "
                         f"{s} (frame_size {config.frame_size} / input_pool {config.input_pool})")
    if program in ("chip", "chip_fast"):
        if config.cnn_layers != 1:
            raise ValueError(f"the chip program runs one CNN layer; the model has "
                             f"cnn_layers={config.cnn_layers}")
        if (config.frame_size, config.input_pool, config.K) != (CHIP_SIDE, 1, CHIP_CYCLE):
            raise ValueError(f"the chip program reads {CHIP_SIDE}x{CHIP_SIDE} frames in "
                             f"{CHIP_CYCLE}-frame cycles: the model has frame_size="
                             f"{config.frame_size}, input_pool={config.input_pool}, "
                             f"K={config.K}")
