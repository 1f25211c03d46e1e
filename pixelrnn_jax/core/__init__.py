"""The model layer: quantizers, kernels, cells, the scan encoder, the model and its
accounting. Imports nothing else of the package but `core`."""
from pixelrnn_jax.core import accounting, cells, encoder, model, ops, quantizers
from pixelrnn_jax.core.config import NOISE_SITES, PRECISIONS, ModelConfig
from pixelrnn_jax.core.encoder import Encoder, InPixelCNN
from pixelrnn_jax.core.model import (
                                     Decoder,
                                     PixelRNNModel,
                                     as_variables,
                                     check_video,
                                     classify,
                                     decode,
                                     encode,
                                     frame_logits,
                                     init,
                                     unwrap_params,
)
from pixelrnn_jax.core.quantizers import heaviside, sign, ternary

__all__ = ["ModelConfig", "NOISE_SITES", "PRECISIONS", "PixelRNNModel", "Encoder",
           "InPixelCNN", "Decoder", "init", "encode", "classify", "decode", "frame_logits",
           "check_video", "as_variables", "unwrap_params", "sign", "heaviside", "ternary",
           "accounting", "cells", "encoder", "model", "ops", "quantizers"]
