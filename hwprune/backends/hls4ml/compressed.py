"""Compressed weight storage for the Resource strategy, in hwprune's own kernel.

hls4ml 1.3.0's Compression path fails (KeyError 'dense_function' with Resource, g++ errors
with Latency), so hwprune writes the project with hls4ml's Resource Dense and then swaps
each compressed layer to ``nnet::dense_coo`` (``templates/hls4ml/nnet_dense_coo.h``):
its weights header holds only the nonzero weights as (input, output, value) triples, and
the call and the layer configuration are rewritten to use it. Every edit checks that the
text it replaces is there, so a change in hls4ml's writer is an error, not a silent skip.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from hwprune.backends.hls4ml.sparsity import coo_shape
from hwprune.errors import ModelError
from hwprune.paths import templates_dir
from hwprune.ir.fixed import from_grid, to_real

KERNEL = "nnet_dense_coo.h"


def _replace_once(text: str, pattern: str, repl: str, what: str) -> str:
    new, count = re.subn(pattern, repl, text, count=1, flags=re.MULTILINE)
    if count != 1:
        raise ModelError(f"the hls4ml project does not look as expected: cannot find {what}")
    return new


def coo_entries(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input index, output index, integer value) of every nonzero weight, by input then output;
    one zero entry for an all-zero layer (C++ has no empty arrays)."""
    q = from_grid(layer.weight, layer.weight_t, f"layer {layer.name!r} weight")  # (out, in)
    cols, rows = np.nonzero(q)
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    values = q[cols, rows]
    if rows.size == 0:
        rows, cols, values = np.zeros(1, int), np.zeros(1, int), np.zeros(1, np.int64)
    return rows, cols, values


def weights_header(layer, var: str, weight_type: str, env) -> str:
    rows, cols, values = coo_entries(layer)
    entries, row_bits, col_bits = coo_shape(layer.weight)
    reals = to_real(values, layer.weight_t)
    return env.get_template("dense_coo_weights.h.j2").render(
        var=var, layer=layer.name, weight_type=weight_type, row_bits=row_bits, col_bits=col_bits,
        entries=[(int(r), int(c), np.format_float_positional(v, unique=True, trim="0"))
                 for r, c, v in zip(rows, cols, reals)],
        n_entries=entries, n_weights=int(layer.weight.size))


def compress_layer(project: Path, name: str, node, layer, env) -> None:
    """Rewrite one Resource Dense layer of a written hls4ml project to COO storage."""
    firmware = project / "firmware"
    index, var = node.index, node.weights["weight"].name
    weight_type = node.weights["weight"].type.name
    config = f"config{index}"
    (firmware / "weights" / f"{var}.h").write_text(weights_header(layer, var, weight_type, env))
    txt = firmware / "weights" / f"{var}.txt"
    if txt.exists():
        txt.unlink()

    params = firmware / "parameters.h"
    text = params.read_text()
    if KERNEL not in text:
        text = _replace_once(text, r'^#include "nnet_utils/nnet_dense.h"\n',
                             f'#include "nnet_utils/nnet_dense.h"\n#include "nnet_utils/{KERNEL}"\n',
                             "the nnet_dense.h include in parameters.h")
    entries = coo_shape(layer.weight)[0]
    coo_config = (f"struct {config}_coo : {config} {{\n"
                  f"    static const unsigned n_entries = {entries};\n"
                  f"    typedef {var}_entry_t entry_t;\n}};\n")
    text = _replace_once(text, rf"^(struct {config} : nnet::dense_config \{{\n(?:.*\n)*?\}};\n)",
                         lambda m: m.group(1) + coo_config, f"struct {config} in parameters.h")
    params.write_text(text)

    top = firmware / f"{_project_name(project)}.cpp"
    text = top.read_text()
    text = _replace_once(text, rf"^\s*nnet::load_weights_from_txt<[^>]*>\({var}, \"{var}\.txt\"\);\n", "",
                         f"the loading of {var}.txt")
    text = _replace_once(text, rf"nnet::dense<([^>]*), {config}>\(([^;]*), {var}, ",
                         rf"nnet::dense_coo<\1, {config}_coo>(\2, {var}, ", f"the call of layer {name!r}")
    top.write_text(text)
    shutil.copyfile(templates_dir() / "hls4ml" / KERNEL, firmware / "nnet_utils" / KERNEL)


def _project_name(project: Path) -> str:
    names = [p.stem for p in (project / "firmware").glob("*.cpp")]
    if len(names) != 1:
        raise ModelError(f"{project}/firmware holds {len(names)} .cpp files; expected the one top function")
    return names[0]
