"""The training layer: configuration, steps, the one epoch loop, runs, sweeps, checkpoints.
Imports `core`, `data` and `plots` below it, nothing above."""
from pixelrnn_jax.training import checkpoints, distributed, loop, run, rundir, steps, sweeps
from pixelrnn_jax.training.checkpoints import CheckpointStore
from pixelrnn_jax.training.config import TrainConfig
from pixelrnn_jax.training.distributed import DistributedConfig
from pixelrnn_jax.training.errors import TrainingError
from pixelrnn_jax.training.loop import Schedule, fit, reduce_on_plateau
from pixelrnn_jax.training.run import initial_params, load_trained, train_and_evaluate
from pixelrnn_jax.training.steps import Stepper, make_mesh, make_optimizer, train_step
from pixelrnn_jax.training.sweeps import init_members, sweep_stepper, train_sweep

__all__ = ["TrainConfig", "DistributedConfig", "TrainingError", "CheckpointStore", "Schedule",
           "Stepper", "fit", "reduce_on_plateau", "train_and_evaluate", "train_sweep",
           "init_members", "sweep_stepper", "load_trained", "initial_params", "make_mesh",
           "make_optimizer", "train_step", "checkpoints", "distributed", "loop", "rundir",
           "run", "steps", "sweeps"]
