"""Checks on the shape of the code: modules import each other without a cycle, counting the
imports inside functions too (a cycle hidden in a function is still two modules that cannot
be understood, tested or moved apart), and none grows past 400 lines (a registry gets a new
module instead)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "hwprune"
MAX_LINES = 400


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _resolve(name: str, modules: dict) -> str:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def import_graph(in_functions: bool = False, package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the hwprune modules it imports when it is imported (its top-level
    statements), and with ``in_functions`` those its functions import when they run."""
    modules = _modules(package)
    edges = {}
    for name, path in modules.items():
        targets = set()
        tree = ast.parse(path.read_text())
        for node in (ast.walk(tree) if in_functions else tree.body):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hwprune"):
                for alias in node.names:
                    targets.add(_resolve(f"{node.module}.{alias.name}", modules) or _resolve(node.module, modules))
            elif isinstance(node, ast.Import):
                targets.update(_resolve(a.name, modules) for a in node.names if a.name.startswith("hwprune"))
        edges[name] = {t for t in targets if t and t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_no_import_cycle_through_imports_inside_functions():
    assert cycles(import_graph(in_functions=True)) == []


def test_the_import_graph_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "hwprune"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from hwprune.sub.low import f\n")
    (package / "sub" / "low.py").write_text("def f():\n    from hwprune import high\n    return high\n")
    (package / "high.py").write_text("import hwprune.sub.low\n")
    assert cycles(import_graph(package=package)) == []
    assert cycles(import_graph(in_functions=True, package=package)) == [["hwprune.high", "hwprune.sub.low"]]


def test_no_module_over_400_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
