"""The intermediate representation where frontends and backends meet."""

from hwprune.ir.graph import Graph
from hwprune.ir.io import load_graph, save_graph
from hwprune.ir.layers import LAYER_KINDS, Dense, Flatten, Layer, ReLU, Softmax

__all__ = ["Graph", "Layer", "Dense", "ReLU", "Flatten", "Softmax", "LAYER_KINDS", "load_graph", "save_graph"]
