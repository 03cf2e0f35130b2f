"""Small enough to read: no module over 400 lines, no function over 60, in the product,
its tests and its benches (ARCHITECTURE.md's rule of thumb, enforced).

A module that grows past the limit holds more than one idea: split it by what it holds.
A long function usually mixes steps that have names of their own.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("node", "transport", "tests", "benches")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def python_files() -> list[Path]:
    return sorted(p for tree in TREES for p in (ROOT / tree).rglob("*.py"))


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    return found


def test_no_module_is_longer_than_the_limit() -> None:
    long = []
    for path in python_files():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert long == []


def test_no_function_is_longer_than_the_limit() -> None:
    assert [f for path in python_files() for f in long_functions(path)] == []


def test_the_checks_see_the_code() -> None:
    files = python_files()
    assert len(files) > 150 and ROOT / "node" / "shell" / "replica.py" in files
    sample = ROOT / "tests" / "architecture" / "test_sizes.py"
    assert long_functions(sample) == []
