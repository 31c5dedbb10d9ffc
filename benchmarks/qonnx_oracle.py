"""qonnx's own execution of a QONNX file (``qonnx.core.onnx_exec.execute_onnx``): the oracle
of the survey and of the QONNX tests.

Two things a QONNX file needs before qonnx 1.0 runs it: every tensor's shape (qonnx's
``InferShapes``, which knows its custom ops), and an opset import for each QONNX domain it
uses. hls4ml's example files import none for ``qonnx.custom_op.channels_last``; qonnx then
builds the standard op it runs each channels-last node as at ONNX opset 1, where MaxPool has
no ``ceil_mode`` and onnxruntime refuses it. The import added here is the file's own
default-domain version, which is the opset the node was written for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from hwprune.frontends.onnx import load_onnx
from hwprune.ir.fixed import to_real

QONNX_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general",
                 "qonnx.custom_op.channels_last")


def is_qonnx(path: Path) -> bool:
    """Whether the file has a node of a QONNX domain."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(node.domain in QONNX_DOMAINS for node in model.graph.node)


def qonnx_model(path: Path):
    """The file as a qonnx ``ModelWrapper``, with its QONNX domains imported and its shapes inferred."""
    import onnx
    from onnx import helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    proto = onnx.load(str(path))
    default = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=13)
    imported = {o.domain for o in proto.opset_import}
    for domain in sorted({node.domain for node in proto.graph.node} - imported):
        if domain in QONNX_DOMAINS:
            version = default if domain.endswith("channels_last") else 1
            proto.opset_import.append(helper.make_opsetid(domain, version))
    return ModelWrapper(proto).transform(InferShapes())


def qonnx_runner(path: Path) -> tuple[tuple, Callable[[np.ndarray], np.ndarray]]:
    """``(input shape without the batch axis, run)``; ``run(x)`` returns one output row per
    example of ``x``, flattened, run one example at a time (the files fix the batch at 1)."""
    from qonnx.core.onnx_exec import execute_onnx

    model = qonnx_model(path)
    initializers = {t.name for t in model.graph.initializer}
    name = next(i.name for i in model.graph.input if i.name not in initializers)
    out = model.graph.output[0].name
    shape = tuple(int(d) for d in model.get_tensor_shape(name)[1:])

    def run(x: np.ndarray) -> np.ndarray:
        rows = [execute_onnx(model, {name: row[None].astype(np.float32)})[out].reshape(-1) for row in x]
        return np.stack(rows)

    return shape, run


def exact_to_qonnx(path: Path, y_int: np.ndarray, y_qonnx: np.ndarray) -> str:
    """A QONNX file is fully quantized: the export's outputs, as reals, equal qonnx's value for value."""
    got = to_real(y_int, load_onnx(path).output_t).reshape(y_qonnx.shape)
    if np.array_equal(got, y_qonnx):
        return f"equal to qonnx on {len(got)} inputs ({got.size:,} values)"
    i, j = (int(v) for v in np.argwhere(got != y_qonnx)[0])
    return (f"{int(np.sum(got != y_qonnx)):,} of {got.size:,} values differ from qonnx's; first: input {i}, "
            f"output {j}: hwprune {got[i, j]}, qonnx {y_qonnx[i, j]}")
