"""The sensor layer: the SCAMP-5 model and its programs (`scamp5`), the authors' file formats
(`authors_files`) and their model as this library's (`authors_model`), real recordings
(`recordings`) and the decoder fine-tuned on them (`readout_decoder`), the program's units
(`units`). Imports `core`, `training`, `data` and `plots`, nothing above."""
from pixelrnn_jax.sensor import (
                                 authors_files,
                                 authors_model,
                                 readout_decoder,
                                 recordings,
                                 scamp5,
                                 units,
)

__all__ = ["authors_files", "authors_model", "readout_decoder", "recordings", "scamp5", "units"]
