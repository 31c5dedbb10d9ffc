"""A conv model given inputs of the other dimensionality: the error speaks the user's layout."""

import pytest
from torch import nn

from hwprune.errors import ShapeError
from hwprune.frontends.torch import from_torch


@pytest.mark.parametrize("model, shape, wanted", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)), (1, 64), "(channels, height, width)"),
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 62, 3)), (1, 8, 8), "(channels, length)"),
])
def test_inputs_of_the_wrong_dimensionality_name_the_layout_the_model_takes(model, shape, wanted):
    with pytest.raises(ShapeError) as info:
        from_torch(model, name="m", fallback_input_shape=shape)
    message = str(info.value)
    assert wanted in message and str(shape) in message, message
