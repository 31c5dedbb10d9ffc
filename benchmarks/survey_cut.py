"""The survey's files whose own output is not the network's: the tensor each is cut at
(``hwprune export --output``) and the same cut for the source framework's oracle."""

from __future__ import annotations

from pathlib import Path

#: Files whose own output is no network output: the tensor the survey cuts them at (``--output``).
#: tf2onnx's MNIST is a TF1 training graph ending in the accuracy against a labels input; its
#: logits are ``add_2:0``, the last Add, which its Softmax reads.
CUT_AT = {"mnist_tf2onnx.onnx": "add_2:0"}


def cut_model(path: Path, tensor: str, work: Path) -> Path:
    """The model cut at ``tensor`` as ``onnx.utils.Extractor`` cuts it, without the inputs it no longer reads."""
    import onnx
    import onnx.utils
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    constants = {t.name for t in model.graph.initializer}
    cut = onnx.utils.Extractor(model).extract_model(
        [i.name for i in model.graph.input if i.name not in constants], [tensor])
    read = {name for node in cut.graph.node for name in node.input}
    for unread in [i for i in cut.graph.input if i.name not in read]:
        cut.graph.input.remove(unread)
    onnx.save(cut, str(work / "cut.onnx"))
    return work / "cut.onnx"
