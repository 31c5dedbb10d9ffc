"""Checks on the shape of the code: modules import each other without a cycle, counting the
imports inside functions too (a cycle hidden in a function is still two modules that cannot
be understood, tested or moved apart), and none grows past 400 lines (a registry gets a new
module instead)."""

import ast
import subprocess
import sys
from pathlib import Path

from benchmarks.architecture import components

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


def _statements(tree: ast.Module, in_functions: bool):
    """The statements that run when the module is imported (and, with ``in_functions``,
    when its functions run); never those under ``if TYPE_CHECKING:``."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            pending.extend(node.orelse)
            continue
        yield node
        if in_functions:
            pending.extend(ast.iter_child_nodes(node))


def import_graph(in_functions: bool = False, package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the hwprune modules it imports when it is imported (its top-level
    statements), and with ``in_functions`` those its functions import when they run.
    Importing ``a.b.c`` runs the ``__init__`` of ``a`` and ``a.b`` too: they are edges,
    except the packages the importing module itself lies in (they are running already)."""
    modules = _modules(package)
    edges = {}
    for name, path in modules.items():
        targets = set()
        for node in _statements(ast.parse(path.read_text()), in_functions):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hwprune"):
                for alias in node.names:
                    targets.add(_resolve(f"{node.module}.{alias.name}", modules) or _resolve(node.module, modules))
            elif isinstance(node, ast.Import):
                targets.update(_resolve(a.name, modules) for a in node.names if a.name.startswith("hwprune"))
        packages = set()
        for target in filter(None, targets):
            parts = target.split(".")
            packages.update(".".join(parts[:i]) for i in range(2, len(parts)))
        packages = {p for p in packages if p in modules and not name.startswith(p + ".")}
        edges[name] = {t for t in targets | packages if t and t != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module."""
    return [component for component in components(edges) if len(component) > 1]


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
    assert cycles(import_graph(in_functions=True, package=package)) == [["hwprune.high", "hwprune.sub", "hwprune.sub.low"]]


def test_the_import_graph_sees_the_packages_an_import_initialises(tmp_path):
    package = tmp_path / "hwprune"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from hwprune.sub.api import f\n")
    (package / "sub" / "api.py").write_text("from hwprune.low import g\n")
    (package / "sub" / "leaf.py").write_text("x = 1\n")
    # low imports only a leaf of sub, but that runs sub/__init__, which imports api, which imports low
    (package / "low.py").write_text("from hwprune.sub.leaf import x\ng = x\n")
    assert cycles(import_graph(package=package)) == [["hwprune.low", "hwprune.sub", "hwprune.sub.api"]]
    (package / "low.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hwprune.sub.leaf import x\n")
    assert cycles(import_graph(in_functions=True, package=package)) == []


def test_no_module_over_400_lines():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_export_path_imports_no_torch():
    # torch takes seconds to import: exporting, verifying and reporting a graph never need it,
    # so the modules that import it load inside the functions that train or read torch files
    code = ("import sys, hwprune.cli, hwprune.pipeline, hwprune.report, hwprune.harness\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'ray') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
