"""The pure packages (protocol, consensus, resilience, app) import no I/O, concurrency,
clock or randomness modules and read no clock: a static check over their source with ``ast``. Imports under ``if TYPE_CHECKING:``
(annotations only, e.g. of a seeded ``random.Random`` passed in) are allowed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_PACKAGES = [ROOT / "node" / name for name in ("protocol", "consensus", "resilience", "app")]
FORBIDDEN_MODULES = {
    "trio",
    "trio_websocket",
    "socket",
    "time",
    "asyncio",
    "sqlite3",
    "threading",
    "os",
    "random",
}
CLOCK_CALLS = {"time", "monotonic", "perf_counter", "time_ns", "monotonic_ns"}


def pure_files() -> list[Path]:
    files = [p for pkg in PURE_PACKAGES if pkg.is_dir() for p in sorted(pkg.rglob("*.py"))]
    assert {p.parent.name for p in files} == {"protocol", "consensus", "resilience", "app"}
    return files


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of nodes under ``if TYPE_CHECKING:`` (imported for annotations only)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def violations(source: str) -> list[str]:
    found = []
    tree = ast.parse(source)
    annotations_only = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in annotations_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.module and node.level == 0 and node.module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr in CLOCK_CALLS
                and isinstance(func.value, ast.Name)
                and func.value.id in ("time", "trio", "_time")
            ):
                found.append(f"line {node.lineno}: call {func.value.id}.{func.attr}()")
            elif isinstance(func, ast.Name) and func.id in {"open", "__import__"}:
                found.append(f"line {node.lineno}: call {func.id}()")
    return found


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module(path: Path) -> None:
    assert violations(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "import trio",
        "import os.path",
        "from time import monotonic",
        "import random",
        "from asyncio import sleep",
        "import socket as s",
        "from threading import Lock",
        "x = time.monotonic()",
        "x = trio.current_time() + time.time()",
        "open('f')",
    ],
)
def test_the_checker_catches(source: str) -> None:
    assert violations(source)


def test_the_checker_allows_pure_code() -> None:
    assert violations("import hashlib\nfrom node.protocol import codec\nx = self.time()") == []
    # a seeded random.Random passed in from outside may be named in annotations
    assert violations("if TYPE_CHECKING:\n    import random\n") == []
