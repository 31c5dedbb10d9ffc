"""Reading a Keras model configuration as data: its layer entries, the layers each reads
(``inbound_nodes``, or the layer before it in a Sequential model), the layers it returns,
and its input shape. Keras 3 writes ``keras_history`` ``[layer, call, output index]``;
Keras 2 ``[layer, call, output index, kwargs]`` lists."""

from __future__ import annotations

from hwprune.errors import ModelError, UnsupportedLayerError


def model_config(top: dict, where: str) -> tuple[str, list[dict]]:
    """(model name, layer entries) from a ``to_json``/``config.json`` dict or a ``get_config()``."""
    if not isinstance(top, dict):
        raise ModelError(f"{where}: not a Keras model configuration (a JSON object was expected)")
    config = top.get("config", top) if "class_name" in top else top
    if isinstance(config, list):  # Keras 1 / early Keras 2 Sequential: the layer list itself
        return "model", config
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ModelError(f"{where}: no layer list found; expected a Sequential or functional Keras model")
    return str(config.get("name") or "model"), config["layers"]


def layer_sources(entries: list[dict], where: str) -> list[tuple[str, ...]]:
    """The layers each layer reads: its ``inbound_nodes`` in a functional model, the layer
    before it in a Sequential one (none for the first: the model's input)."""
    functional = any(isinstance(e, dict) and "inbound_nodes" in e for e in entries)
    out, previous = [], None
    for entry in entries:
        name = entry.get("config", {}).get("name", entry.get("name"))
        if not functional:
            out.append(() if previous is None else (previous,))
        else:
            nodes = entry.get("inbound_nodes") or []
            if len(nodes) > 1:
                raise UnsupportedLayerError(f"{where}: layer {name!r} is called {len(nodes)} times (a shared layer); "
                                            "hwprune reads layers called once")
            out.append(tuple(_inbound_names(nodes, name, where)))
        previous = name
    return out


def outputs(top: dict, where: str) -> tuple[str, ...]:
    """The layers a functional model returns (``output_layers``); empty for a Sequential one."""
    config = top.get("config", top) if isinstance(top, dict) and "class_name" in top else top
    outputs = config.get("output_layers") if isinstance(config, dict) else None
    if not outputs:
        return ()
    if isinstance(outputs[0], str):  # Keras 3 writes one output as a single [name, node, tensor]
        outputs = [outputs]
    for o in outputs:
        if len(o) > 2 and o[2] != 0:
            raise UnsupportedLayerError(f"{where}: the model returns output {o[2]} of layer {o[0]!r}; hwprune reads "
                                        "layers with one output")
    return tuple(str(o[0]) for o in outputs)


def _inbound_names(nodes, reader: str, where: str) -> list[str]:
    """The layers ``reader`` reads; each history is [layer, call, output index, ...]."""
    names: list[str] = []

    def take(history) -> None:
        if len(history) > 2 and history[2] != 0:  # a layer with several outputs (LSTM states, attention scores)
            raise UnsupportedLayerError(f"{where}: layer {reader!r} reads output {history[2]} of layer "
                                        f"{history[0]!r}; hwprune reads layers with one output")
        names.append(str(history[0]))

    def walk(node) -> None:
        if isinstance(node, dict):
            if "keras_history" in node.get("config", {}):  # Keras 3
                take(node["config"]["keras_history"])
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):  # a live model's get_config() holds tuples
            if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):  # Keras 2 [name, i, j, {}]
                take(node)
                return
            for value in node:
                walk(value)

    walk(nodes)
    return names


def input_shape(entries: list[dict], where: str) -> tuple[int, ...]:
    for entry in entries[:1]:
        config = entry.get("config", {})
        for key in ("batch_input_shape", "batch_shape"):
            if config.get(key):
                return _dims(config[key][1:], where)
        build = entry.get("build_config", {}).get("input_shape")
        if build:
            return _dims(build[1:], where)
    raise ModelError(f"{where}: the first layer gives no input shape (batch_input_shape, batch_shape or "
                     "build_config)")


def _dims(dims, where: str) -> tuple[int, ...]:
    if any(d is None for d in dims):
        raise ModelError(f"{where}: the input shape {list(dims)} has an unknown dimension; hardware needs fixed shapes")
    return tuple(int(d) for d in dims)
