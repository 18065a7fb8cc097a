"""The house rules of DESIGN.md that code can check: who may import what."""

from __future__ import annotations

import ast
from pathlib import Path

import deepnotes

PACKAGE = Path(deepnotes.__file__).parent
TOPICS = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} - {
    "core",
    "data",
}
STDLIB_OK = {
    "__future__", "abc", "collections", "dataclasses", "enum", "functools", "itertools", "math",
    "numbers", "operator", "typing", "warnings", "string", "textwrap",
}  # fmt: skip


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names.add("deepnotes.<relative>")
    return names


def test_core_imports_no_topic() -> None:
    for path in (PACKAGE / "core").rglob("*.py"):
        for name in imports_of(path):
            parts = name.split(".")
            assert not (parts[0] == "deepnotes" and len(parts) > 1 and parts[1] in TOPICS), (
                f"{path.name} imports the topic module {name}"
            )


def test_data_imports_no_topic() -> None:
    for path in (PACKAGE / "data").rglob("*.py"):
        for name in imports_of(path):
            parts = name.split(".")
            assert not (parts[0] == "deepnotes" and len(parts) > 1 and parts[1] in TOPICS), (
                f"{path.name} imports the topic module {name}"
            )


def test_mechanics_implementation_imports_numpy_only() -> None:
    """derivations*/problems*/experiments bridge to autograd and the runner; the rest is NumPy."""
    bridges = ("derivations", "problems", "experiments")
    checked = 0
    for path in (PACKAGE / "mechanics").glob("*.py"):
        if path.stem.startswith(bridges):
            continue
        checked += 1
        for name in imports_of(path):
            root = name.split(".")[0]
            allowed = root in {"numpy"} | STDLIB_OK or name.startswith("deepnotes.mechanics")
            assert allowed, f"mechanics/{path.name} imports {name}; mechanics uses NumPy only"
    assert checked >= 1
