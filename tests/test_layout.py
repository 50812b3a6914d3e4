"""The package's layers (docs/architecture.md): every import of a gsmt module, at the top of a file or
inside a function, goes to a lower layer or stays in its own package, and no two modules import
each other at load time. Read from the source with `ast`, so a lazy import that climbs back up is
caught as well as a top-level one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "src"  # the folder that holds the package
SRC = SOURCES / "gsmt"

# Lowest first. A module may import its own package and anything on a lower layer.
LAYERS = [
    ("_version", "errors", "schema"),
    ("io",),
    ("annotations", "viz"),
    ("data", "evaluation", "postprocess"),
    ("synth", "model", "losses"),
    ("config",),
    ("engine",),
    ("video",),
    ("api",),
    ("commands",),
    ("cli",),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCES).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported gsmt module, at load time?) for each import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gsmt":
            names = [f"{node.module}.{a.name}" for a in node.names]
            found += [(n if (SOURCES / n.replace(".", "/")).with_suffix(".py").exists()
                       or (SOURCES / n.replace(".", "/")).is_dir() else node.module, id(node) in top)
                      for n in names]
        elif isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names if a.name.split(".")[0] == "gsmt"]
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


MODULES = {_module_name(p): p for p in SRC.rglob("*.py")}


def test_every_package_has_a_layer():
    assert {_package(m) for m in MODULES} - {""} <= set(RANK)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "gsmt"))
def test_imports_go_down_or_stay_in_the_package(module):
    own = _package(module)
    upward = [target for target, _ in _imports(MODULES[module])
              if _package(target) and _package(target) != own and RANK[_package(target)] >= RANK[own]]
    assert not upward, f"{module} imports {upward} (layer {RANK[own]})"


def test_no_import_circle_at_load_time():
    graph = {m: {t for t, at_load in _imports(p) if at_load and t in MODULES and t != m}
             for m, p in MODULES.items() if m != "gsmt"}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_layer_table_is_what_the_architecture_page_draws():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for names in LAYERS:
        for name in names:
            assert f"`{name}" in text, name
