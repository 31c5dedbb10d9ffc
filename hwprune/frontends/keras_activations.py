"""Keras activations -> IR layers: ``activation="sigmoid"``/``"tanh"``/``"selu"`` (on a Dense or an
Activation layer), the LeakyReLU layer (``negative_slope``, Keras 2's ``alpha``; default 0.3)
and the PReLU layer (one slope, or one per channel: ``shared_axes`` over every other axis).

``hard_sigmoid`` is refused: Keras 2 defines it as ``clip(0.2 x + 0.5, 0, 1)`` and Keras 3
as ``relu6(x + 3) / 6``, and a layer configuration does not say which one it meant.
"""

from __future__ import annotations

import numpy as np

from hwprune.errors import UnsupportedLayerError, WeightError
from hwprune.frontends.keras_builder import Builder
from hwprune.frontends.keras_layers import ACTIVATIONS, converter
from hwprune.ir.activations import LeakyReLU, Selu, Sigmoid, Tanh

ACTIVATIONS.update(sigmoid=Sigmoid, tanh=Tanh, selu=Selu)


@converter("LeakyReLU")
def _leaky_relu(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    slope = config.get("negative_slope", config.get("alpha", 0.3))
    builder.add(LeakyReLU(name, alpha=np.array([0.3 if slope is None else float(slope)])))


@converter("PReLU")
def _prelu(builder: Builder, keras_name: str, name: str, config: dict, weights: tuple) -> None:
    if len(weights) != 1:
        raise WeightError(f"layer {keras_name!r} (PReLU): expected one slope array, got {len(weights)} arrays")
    alpha = np.asarray(weights[0], dtype=np.float64)
    channels = builder.shape[-1]
    if alpha.size not in (1, channels) or (alpha.size == channels and alpha.shape[-1] != channels):
        raise UnsupportedLayerError(f"layer {keras_name!r} (PReLU): slopes of shape {alpha.shape} on an input of "
                                    f"shape {builder.shape}; hwprune takes one slope or one per channel "
                                    "(shared_axes over every other axis)")
    builder.add(LeakyReLU(name, alpha=alpha.reshape(-1)))
