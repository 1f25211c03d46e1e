"""pixelrnn_jax: end-to-end-optimised in-pixel recurrent perception in JAX/Flax.

Layers, each importing only from those before it (ARCHITECTURE.md): `core` (the model),
`data` and `plots` (leaves), `training`, `sensor` (the SCAMP-5 model, the authors' files,
real recordings), `paper` (the paper's tables and figures), `cli` (the experiment scripts'
flags).
"""
import sys

from pixelrnn_jax.core import (
                               Decoder,
                               Encoder,
                               InPixelCNN,
                               ModelConfig,
                               PixelRNNModel,
                               accounting,
                               cells,
                               check_video,
                               classify,
                               decode,
                               encode,
                               frame_logits,
                               heaviside,
                               init,
                               ops,
                               quantizers,
                               sign,
                               ternary,
)
from pixelrnn_jax.sensor import authors_files, authors_model, readout_decoder, recordings, scamp5
from pixelrnn_jax.training import TrainConfig, train_and_evaluate

__version__ = "0.1.0"

# `import pixelrnn_jax.scamp5` and `from pixelrnn_jax.scamp5 import simulate` keep working:
# the package lives in the sensor layer
sys.modules[f"{__name__}.scamp5"] = scamp5

__all__ = [
    "ModelConfig", "TrainConfig", "PixelRNNModel", "Encoder", "InPixelCNN", "Decoder",
    "init", "encode", "classify", "decode", "frame_logits", "check_video",
    "train_and_evaluate", "sign", "heaviside", "ternary",
    "accounting", "authors_files", "authors_model", "cells", "ops", "quantizers", "readout_decoder",
    "recordings", "scamp5",
]
