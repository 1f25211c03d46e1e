"""Sensor programs the encoder's forward pass can follow (`ModelConfig.sensor`).

"ideal" is the paper's equations (`core.encoder`). Other programs are differentiable forms
of a real sensor's program, defined with the sensor model and registered here by it (the
SCAMP-5 chip program: `sensor.scamp5.chip_forward`), so that the model trains through them
without the core importing the sensor layer.

A registered program is `forward(x, cnn_kernels, cell_kernels, config, rng) -> readout`:
x the binarized input (t b h w), the kernels +-1 with their surrogate gradients, the readout
(b t/K h w) in model units; and `check(config)`, a one-line ValueError unless it runs it.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

__all__ = ["SensorForward", "SENSORS", "register_sensor", "sensor_forward", "check_sensor"]

SENSORS = ("ideal", "chip")


class SensorForward(NamedTuple):
    forward: Callable
    check: Callable


_REGISTRY: dict[str, SensorForward] = {}


def register_sensor(name: str, forward: Callable, check: Callable) -> None:
    if name not in SENSORS or name == "ideal":
        raise ValueError(f"sensor program {name!r} is not one of {SENSORS[1:]}")
    _REGISTRY[name] = SensorForward(forward, check)


def sensor_forward(name: str) -> SensorForward:
    if name not in _REGISTRY:
        raise ValueError(f"sensor {name!r} has no forward pass registered: import "
                         f"pixelrnn_jax (it registers {', '.join(SENSORS[1:])})")
    return _REGISTRY[name]


def check_sensor(config) -> None:
    """Raises a one-line ValueError unless `config.sensor` runs the model of `config`."""
    if config.sensor not in SENSORS:
        raise ValueError(f"sensor must be one of {SENSORS}, got {config.sensor!r}")
    if config.sensor == "ideal":
        return
    if any(v > 0 for v in config.noise.values()):
        raise ValueError(f"sensor={config.sensor!r} draws its calibrated noise itself: leave "
                         f"the noise_* fields at 0 (they are the ideal sensor's noise sites)")
    if config.sensor in _REGISTRY:
        _REGISTRY[config.sensor].check(config)
