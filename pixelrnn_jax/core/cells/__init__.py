"""Recurrent cells and camera baselines, one registry (`registry`): the RNN cells of
supplement S1.1.3 (`rnn`) and the cameras of S1.1 (`cameras`) register on import."""
from pixelrnn_jax.core.cells import cameras, rnn
from pixelrnn_jax.core.cells.registry import (
                                              CELLS,
                                              READOUT_SITE,
                                              CellContext,
                                              CellSpec,
                                              get_cell_spec,
                                              ones_state,
                                              register,
                                              with_noise,
)

__all__ = ["CELLS", "READOUT_SITE", "CellContext", "CellSpec", "get_cell_spec", "ones_state",
           "register", "with_noise", "cameras", "rnn"]
