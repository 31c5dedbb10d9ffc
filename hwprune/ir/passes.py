"""Graph-to-graph rewrites every frontend shares (each returns a new ``Graph``)."""

from __future__ import annotations

from hwprune.ir.graph import Graph


def remove_identity(graph: Graph) -> Graph:
    """The graph without its Identity layers: a reader of an Identity reads the Identity's
    input instead (a graph output too). A graph that is nothing but Identity layers keeps
    its last one, since a graph needs a layer."""
    alias: dict[str, str] = {}
    for layer in graph.layers:
        if layer.kind == "identity":
            alias[layer.name] = alias.get(layer.inputs[0], layer.inputs[0])
    if not alias or len(alias) == len(graph.layers):
        return graph
    layers = [layer.with_(inputs=tuple(alias.get(s, s) for s in layer.inputs))
              for layer in graph.layers if layer.name not in alias]
    outputs = tuple(dict.fromkeys(alias.get(o, o) for o in graph.outputs))
    return graph.replace(layers=tuple(layers), outputs=outputs)
