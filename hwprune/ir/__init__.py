"""The intermediate representation where frontends and backends meet."""

from hwprune.ir.graph import INPUT, Graph, GraphInput
from hwprune.ir.io import load_graph, save_graph
import hwprune.ir.int8  # noqa: E402,F401 (registers the int8 dialect's layer kinds)
from hwprune.ir.activations import BatchNorm, HardSigmoid, LeakyReLU, Quantize, Selu, Sigmoid, Sign, Tanh
from hwprune.ir.layers import (
    LAYER_KINDS, VARIADIC, Add, AvgPool1D, AvgPool2D, Clip, Concatenate, Conv1D, Conv2D, Dense, Flatten,
    GlobalAvgPool1D, GlobalAvgPool2D, Identity, Layer, MaxPool1D, MaxPool2D, Multiply, ReLU, Reshape, Softmax,
    WeightedLayer, kinds,
)

__all__ = ["Graph", "GraphInput", "INPUT", "Layer", "WeightedLayer", "Dense", "ReLU", "Clip", "Flatten", "Reshape",
           "Identity", "Softmax", "Conv1D", "Conv2D", "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D",
           "GlobalAvgPool1D", "GlobalAvgPool2D", "Add", "Multiply", "Concatenate", "LAYER_KINDS", "VARIADIC", "kinds",
           "load_graph", "save_graph", "LeakyReLU", "HardSigmoid", "Sigmoid", "Tanh", "Selu", "BatchNorm", "Quantize",
           "Sign"]
