"""The intermediate representation where frontends and backends meet."""

from hwprune.ir.graph import Graph
from hwprune.ir.io import load_graph, save_graph
import hwprune.ir.int8  # noqa: E402,F401 (registers the int8 dialect's layer kinds)
from hwprune.ir.layers import (
    LAYER_KINDS, AvgPool1D, AvgPool2D, Conv1D, Conv2D, Dense, Flatten, GlobalAvgPool1D, GlobalAvgPool2D, Layer,
    MaxPool1D, MaxPool2D, ReLU, Softmax, WeightedLayer,
)

__all__ = ["Graph", "Layer", "WeightedLayer", "Dense", "ReLU", "Flatten", "Softmax", "Conv1D", "Conv2D", "MaxPool1D",
           "MaxPool2D", "AvgPool1D", "AvgPool2D", "GlobalAvgPool1D", "GlobalAvgPool2D", "LAYER_KINDS", "load_graph",
           "save_graph"]
