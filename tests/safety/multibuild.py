"""Many exported models in one host executable: one compiler run checks dozens of graphs.

Each graph (with a distinct name) is exported with ``export_c`` into its own folder; a
generated driver calls every ``<name>_predict`` on its inputs in turn. Each model.c finds
its own headers first (quoted includes), so the sources of all graphs link together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from hwprune import reference
from hwprune.backends.c import export_c
from hwprune.harness.build import compile_executable

STRICT = ("-std=c99", "-Wall", "-Wextra", "-Wconversion", "-Wpedantic", "-Wshadow", "-Werror")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")


def _driver(names: Sequence[str]) -> str:
    lines = ["#include <stdio.h>", "#include <stdint.h>", "#include <stdlib.h>"]
    lines += [f'#include "{n}/model.h"' for n in names]
    for n in names:
        N = n.upper()
        lines += [
            f"static int run_{n}(FILE *in, FILE *out, long vectors)",
            "{",
            "    long v;",
            "    int i;",
            "    int64_t raw;",
            f"    {n}_input_t x[{N}_INPUT_SIZE];",
            f"    {n}_output_t y[{N}_OUTPUT_SIZE];",
            "    for (v = 0; v < vectors; ++v) {",
            f"        for (i = 0; i < {N}_INPUT_SIZE; ++i) {{",
            "            if (fread(&raw, sizeof raw, 1, in) != 1) return 1;",
            f"            x[i] = ({n}_input_t)raw;",
            "        }",
            f"        if ({n}_predict(x, y) != 0) return 4;",
            f"        for (i = 0; i < {N}_OUTPUT_SIZE; ++i) {{",
            "            raw = (int64_t)y[i];",
            "            if (fwrite(&raw, sizeof raw, 1, out) != 1) return 1;",
            "        }",
            "    }",
            "    return 0;",
            "}",
        ]
    lines += ["int main(int argc, char **argv)", "{", "    FILE *in, *out;", "    long vectors;",
              "    if (argc != 4) return 1;", '    in = fopen(argv[1], "rb");', '    out = fopen(argv[2], "wb");',
              "    if (!in || !out) return 1;", "    vectors = atol(argv[3]);"]
    lines += [f"    if (run_{n}(in, out, vectors) != 0) return 2;" for n in names]
    lines += ["    fclose(in);", "    return fclose(out) != 0;", "}", ""]
    return "\n".join(lines)


def build_and_run(graphs, inputs, root: Path, formats, flags=(*STRICT, "-O1")):
    """Compile every graph into one executable, run it on ``inputs`` (integer arrays, the same
    number of vectors per graph) and return the outputs per graph (int64 arrays)."""
    import subprocess

    root = Path(root)
    names = [g.name for g in graphs]
    for graph, fmt in zip(graphs, formats):
        export_c(graph, root / graph.name, fmt)
    (root / "multi_driver.c").write_text(_driver(names))
    exe = compile_executable([root / "multi_driver.c", *(root / n / "model.c" for n in names)], root / "multi",
                             [root], flags=flags)
    vectors = len(inputs[0])
    np.concatenate([np.asarray(x, dtype="=i8").reshape(-1) for x in inputs]).tofile(root / "in.bin")
    done = subprocess.run([str(exe), str(root / "in.bin"), str(root / "out.bin"), str(vectors)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"the driver failed ({done.returncode}): {done.stderr[-3000:]}"
    data = np.fromfile(root / "out.bin", dtype="=i8")
    outputs, pos = [], 0
    for graph in graphs:
        size = int(np.prod(graph.output_shape)) * vectors
        outputs.append(data[pos:pos + size].reshape(vectors, *graph.output_shape))
        pos += size
    assert pos == data.size
    return outputs


def first_difference(graph, x, got, engine: str = "host C") -> str:
    """The first element where ``got`` (``engine``'s outputs) differs from the reference, named
    by graph, vector and output; "" where they are equal."""
    want = reference.run(graph, x)
    if np.array_equal(want, got):
        return ""
    v, e = (int(i) for i in np.argwhere(want.reshape(len(x), -1) != got.reshape(len(x), -1))[0])
    return (f"{graph.name}: vector {v}, output {e}: reference {want.reshape(len(x), -1)[v, e]}, "
            f"{engine} {got.reshape(len(x), -1)[v, e]}\n{graph.summary()}")
