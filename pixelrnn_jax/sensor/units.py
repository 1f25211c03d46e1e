"""The units of the SCAMP-5 program: one home for the facts every sensor module converts by.

A model value v (one +-1 product of a multiply-accumulate = 1) is `UNITS_PER_PRODUCT * v`
analog units on the chip: the program's "input white", 10 units by default (the authors'
header, `INPUT_WHITE`; `../shared/data/SCAMP5_PROGRAM.md`). The readout is 8-bit with 0
units at `READOUT_ZERO`, so a read-out value r is (r - 127) / 10 model units and the range
clips at about +-12.7.
"""
from __future__ import annotations

import numpy as np

__all__ = ["UNITS_PER_PRODUCT", "HIDDEN_UNITS", "READOUT_ZERO", "readout_to_model_units"]

UNITS_PER_PRODUCT = 10.0
HIDDEN_UNITS = 80.0      # +- level at which the program stores the binary hidden state
READOUT_ZERO = 127.0     # 8-bit readout value of 0 units


def readout_to_model_units(values) -> np.ndarray:
    """8-bit readout values (any integer or float array) -> float32 model units."""
    return ((np.asarray(values, np.float32) - READOUT_ZERO) / UNITS_PER_PRODUCT).astype(
        np.float32)
