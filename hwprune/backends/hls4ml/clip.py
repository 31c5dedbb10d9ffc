"""A Clip that none of hls4ml's activations computes, in hwprune's own kernel.

hls4ml 1.3.0 clamps with ``relu``, and with ``relu1``/``relu6`` in io_parallel only. Any
other Clip (hardtanh's ``[-1, 1]``, ReLU6 in io_stream) is converted as a ``relu``
Activation, so that hls4ml sets its types and writes its call, and the written project is
then switched to ``nnet::clip`` (``templates/hls4ml/nnet_clip.h``): a configuration that
extends the ReLU's with the two bounds as bit patterns of the input type, and the call
rewritten to use it. Every edit checks that the text it replaces is there (as
``compressed.py`` does), so a change in hls4ml's writer is an error, not a silent skip.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hwprune.backends.hls4ml.compressed import _project_name, _replace_once
from hwprune.paths import templates_dir

KERNEL = "nnet_clip.h"
#: what a mapper puts in a layer dict for this rewrite: the integer bounds on the input's grid
BOUNDS_KEY = "hwprune_clip_bounds"


def clip_layer(project: Path, name: str, node, lo: int, hi: int) -> None:
    """Rewrite the written ``relu`` layer ``name`` of ``project`` to clamp at [lo, hi]."""
    firmware = project / "firmware"
    config = f"relu_config{node.index}"
    params = firmware / "parameters.h"
    text = params.read_text()
    if KERNEL not in text:
        text = _replace_once(text, r'^#include "nnet_utils/nnet_activation.h"\n',
                             f'#include "nnet_utils/nnet_activation.h"\n#include "nnet_utils/{KERNEL}"\n',
                             "the nnet_activation.h include in parameters.h")
    bounds = (f"struct {config}_clip : {config} {{\n"
              f"    static const long long lo_bits = {int(lo)}LL;\n"
              f"    static const long long hi_bits = {int(hi)}LL;\n}};\n")
    text = _replace_once(text, rf"^(struct {config} : nnet::activ_config \{{\n(?:.*\n)*?\}};\n)",
                         lambda m: m.group(1) + bounds, f"struct {config} in parameters.h")
    params.write_text(text)
    top = firmware / f"{_project_name(project)}.cpp"
    text = top.read_text()
    text = _replace_once(text, rf"nnet::relu<([^;]*), {config}>\(", rf"nnet::clip<\1, {config}_clip>(",
                         f"the call of layer {name!r}")
    top.write_text(text)
    shutil.copyfile(templates_dir() / "hls4ml" / KERNEL, firmware / "nnet_utils" / KERNEL)
