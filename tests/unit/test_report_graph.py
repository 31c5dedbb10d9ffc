"""The report's drawing of a graph: which models get one and where the boxes go."""

from hwprune.report.graph import is_branched, layout, markdown, render_plot


def _rows(*layers):
    return [{"name": name, "kind": "relu", "inputs": list(inputs), "output_shape": [4]} for name, inputs in layers]


def test_a_chain_gets_no_drawing(tmp_path):
    report = {"model": "m", "layers": _rows(("a", ["input"]), ("b", ["a"]), ("c", ["b"]))}
    assert not is_branched(report) and markdown(report) == []
    assert not render_plot(report, tmp_path / "g.png") and not (tmp_path / "g.png").exists()


def test_a_layer_sits_one_row_below_the_deepest_tensor_it_reads(tmp_path):
    rows = _rows(("a", ["input"]), ("b", ["a"]), ("c", ["input"]), ("add", ["b", "c"]), ("mul", ["add", "a"]))
    where, inputs = layout(rows)
    assert inputs == ["input"]
    assert {name: level for name, (_, level) in where.items()} == {"input": 0, "a": 1, "c": 1, "b": 2, "add": 3,
                                                                   "mul": 4}
    assert where["a"][0] != where["c"][0]  # side by side
    report = {"model": "m", "layers": rows}
    assert is_branched(report) and render_plot(report, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
