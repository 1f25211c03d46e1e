"""pixelrnn_jax: end-to-end-optimised in-pixel recurrent perception in JAX/Flax."""
from pixelrnn_jax import (accounting, baselines, cells, official, ops, quantizers, recordings,
                          scamp5)
from pixelrnn_jax.config import ModelConfig
from pixelrnn_jax.model import (Decoder, PixelRNNModel, check_video, classify, decode, encode,
                                frame_logits, init)
from pixelrnn_jax.encoder import Encoder, InPixelCNN
from pixelrnn_jax.quantizers import heaviside, sign, ternary

__version__ = "0.1.0"

__all__ = [
    "ModelConfig", "PixelRNNModel", "Encoder", "InPixelCNN", "Decoder",
    "init", "encode", "classify", "decode", "frame_logits", "check_video",
    "sign", "heaviside", "ternary",
    "accounting", "baselines", "cells", "official", "ops", "quantizers", "recordings", "scamp5",
]
