"""Reading an ONNX file within the memory budget, its external data from its own folder only.

``onnx.load`` trusts what the file declares: an initializer's dims, and for external data
(``model.onnx`` + ``model.onnx.data``) a location and length, reading to the end of the data
file when no length is given. So the model is read without its external data first, every
tensor's declared size is checked against ``hwprune.limits`` (each one and their sum), every
external location must be a relative path to a regular file inside the model's folder, and
only then is the external data loaded (onnx checks the location again on its side).
"""

from __future__ import annotations

import os
from pathlib import Path

from hwprune.errors import ModelError
from hwprune.limits import check_declared, declared_bytes


def _tensors(graph):
    """Every TensorProto a graph holds: initializers and Constant-like attributes, subgraphs included."""
    from onnx import AttributeProto

    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == AttributeProto.TENSOR:
                yield attribute.t
            elif attribute.type == AttributeProto.TENSORS:
                yield from attribute.tensors
            elif attribute.type == AttributeProto.GRAPH:
                yield from _tensors(attribute.g)
            elif attribute.type == AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    yield from _tensors(sub)


def _itemsize(tensor) -> int:
    from onnx import helper

    try:
        return max(1, helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize)
    except (KeyError, TypeError, ValueError):
        return 8  # an unknown or string type: counted at the widest numeric size


def _external_file(tensor, folder: Path, path: Path) -> Path:
    location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
    where = f"{path}: tensor {tensor.name!r}: external data location {location!r}"
    if not location or os.path.isabs(location) or Path(location).drive:
        raise ModelError(f"{where} is not a relative path inside the model's folder {folder}")
    target = folder / location
    resolved = target.resolve()
    if folder.resolve() not in resolved.parents:
        raise ModelError(f"{where} leaves the model's folder {folder}; external data must sit beside the model")
    if target.is_symlink() or not target.is_file():
        raise ModelError(f"{where} is not a regular file inside the model's folder {folder}")
    return target


def read_model(path: Path):
    """The ModelProto of ``path``, its declared tensor sizes checked before anything large is read."""
    import onnx
    from onnx import TensorProto

    path = Path(path)
    check_declared(path.stat().st_size, f"{path}: the file")
    model = onnx.load(str(path), load_external_data=False)
    budget_total = 0
    external: dict[Path, int] = {}
    for tensor in _tensors(model.graph):
        nbytes = declared_bytes(tensor.dims, _itemsize(tensor))
        check_declared(nbytes, f"{path}: tensor {tensor.name!r} of shape {tuple(tensor.dims)}")
        budget_total += nbytes
        if tensor.data_location == TensorProto.EXTERNAL:
            target = _external_file(tensor, path.parent, path)
            external[target] = target.stat().st_size
    check_declared(budget_total, f"{path}: its tensors")
    for target, size in external.items():  # onnx reads to the end of a file when no length is given
        check_declared(size, f"{path}: external data file {target.name}")
    if external:
        onnx.load_external_data_for_model(model, str(path.parent))
    return model

