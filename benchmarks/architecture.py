"""The shape of hwprune's imports: cycles, floors and imports inside functions.

    python benchmarks/architecture.py [PATH]   (PATH: a tree holding hwprune/, default: this one)

Counts, over every module of the package: import cycles (strongly connected components of
more than one module) among the imports that run when a module is imported, and with the
imports inside functions counted too; floors (the longest chain of imports, a module that
imports no other hwprune module being floor 1; cycles condensed into one node), per module
and per folder; how many import statements of hwprune modules sit inside functions. To
compare two versions: ``git archive REV hwprune | tar -x -C /tmp/rev`` and run on both.
"""

from __future__ import annotations

import argparse
import ast
import sys
from functools import lru_cache
from pathlib import Path


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in (root / "hwprune").rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def graphs(found: dict[str, Path]) -> tuple[dict, dict, int, int]:
    """(top-level edges, edges with imports inside functions, statements, statements inside functions)."""
    def resolve(name):
        while name and name not in found:
            name = name.rpartition(".")[0]
        return name

    top = {m: set() for m in found}
    every = {m: set() for m in found}
    statements = inner = 0
    for name, path in found.items():
        tree = ast.parse(path.read_text())
        toplevel = set(map(id, tree.body))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hwprune"):
                targets = [resolve(f"{node.module}.{a.name}") or resolve(node.module) for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names if a.name.startswith("hwprune")]
            targets = [t for t in targets if t and t != name]
            if not targets:
                continue
            statements += 1
            every[name].update(targets)
            if id(node) in toplevel:
                top[name].update(targets)
            else:
                inner += 1
    return top, every, statements, inner


def components(edges: dict[str, set]) -> list[list[str]]:
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

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
            found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def floors(edges: dict[str, set]) -> int:
    node_of = {v: i for i, c in enumerate(components(edges)) for v in c}
    condensed: dict[int, set] = {}
    for v, ws in edges.items():
        condensed.setdefault(node_of[v], set()).update(node_of[w] for w in ws if node_of[w] != node_of[v])

    @lru_cache(None)
    def height(c):
        return 1 + max((height(d) for d in condensed.get(c, ())), default=0)

    return max(height(c) for c in condensed)


def by_folder(edges: dict[str, set]) -> dict[str, set]:
    folder = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    out: dict[str, set] = {}
    for v, ws in edges.items():
        out.setdefault(folder(v), set()).update(folder(w) for w in ws if folder(w) != folder(v))
    for ws in list(out.values()):
        for w in ws:
            out.setdefault(w, set())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1]))
    args = parser.parse_args()
    found = modules(Path(args.root))
    top, every, statements, inner = graphs(found)
    print(f"{len(found)} modules; {statements} import statements of hwprune modules, {inner} inside functions")
    print("| imports counted | cycles | modules in cycles | floors (modules) | folder cycles | floors (folders) |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, edges in (("at module top", top), ("inside functions too", every)):
        cycles = [c for c in components(edges) if len(c) > 1]
        folders = by_folder(edges)
        folder_cycles = [c for c in components(folders) if len(c) > 1]
        print(f"| {label} | {len(cycles)} | {sum(map(len, cycles))} | {floors(edges)} | {len(folder_cycles)} | "
              f"{floors(folders)} |")
        for c in cycles:
            print(f"|   cycle | {', '.join(m.removeprefix('hwprune.') for m in c)} | | | | |")


if __name__ == "__main__":
    main()
