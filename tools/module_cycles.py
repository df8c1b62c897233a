#!/usr/bin/env python3
"""Checks that the modules of a Rust crate import one way: no cycle among the top-level modules.

Usage: tools/module_cycles.py CRATE_SRC_DIR [...]

A top-level module is a file or folder directly under src/ (`config.rs` and `config/` are one
module, `config`). An edge A -> B is a non-test reference from a file of A to `crate::B`, or,
from a file directly in src/, to `super::B`. Test code does not count: files named `tests.rs`
or under a `tests/` folder, `testing.rs`, and everything after a `#[cfg(test)]` line in a file
(the project keeps inline tests at the end of a file), and comment lines (a doc link is not an
import). The binary's `main.rs` and `lib.rs` are
the roots and are left out. Prints the graph and every cycle; exits 1 when there is one.
"""
import re
import sys
from pathlib import Path

REF = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` names several modules in one group.
GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)


def module_of(src: Path, path: Path) -> str | None:
    rel = path.relative_to(src)
    if rel.name in ("lib.rs", "main.rs") and len(rel.parts) == 1:
        return None
    if rel.name in ("tests.rs", "testing.rs") or "tests" in rel.parts[:-1]:
        return None
    return rel.parts[0].removesuffix(".rs")


def non_test_text(text: str) -> str:
    """The code before the first `#[cfg(test)]`, without comment lines (doc links are not
    imports)."""
    cut = text.find("#[cfg(test)]")
    code = text if cut < 0 else text[:cut]
    return "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("//"))


def graph(src: Path) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in sorted(src.rglob("*.rs")):
        module = module_of(src, path)
        if module is None:
            continue
        text = non_test_text(path.read_text())
        targets = set(REF.findall(text))
        for group in GROUP.findall(text):
            targets.update(re.findall(r"(?:^|[{,])\s*([a-z_][a-z0-9_]*)", group))
        targets.discard("self")
        targets.discard(module)
        edges.setdefault(module, set()).update(
            t for t in targets if (src / f"{t}.rs").exists() or (src / t).is_dir()
        )
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    failed = False
    for arg in sys.argv[1:]:
        src = Path(arg)
        edges = graph(src)
        found = cycles(edges)
        for module in sorted(edges):
            print(f"{src}: {module} -> {', '.join(sorted(edges[module])) or '-'}")
        for component in found:
            failed = True
            print(f"{src}: import cycle among: {', '.join(component)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
