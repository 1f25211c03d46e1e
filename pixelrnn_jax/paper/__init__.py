"""The paper layer: Table 1's encoders and their comparison, the Table S4 / Fig. S1 grid, the
Fig. 3 bandwidth curve, and the sweeps that train them. Imports every layer below it."""
from pixelrnn_jax.paper import fig3, runs, table1, table1_models, table3, table_s4

__all__ = ["fig3", "runs", "table1", "table1_models", "table3", "table_s4"]
