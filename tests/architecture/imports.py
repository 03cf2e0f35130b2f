"""Who imports whom in ``node/`` and ``transport/``, read statically with ``ast``.

``imports(path)`` lists the project modules a file imports (top level and inside
functions, but not under ``if TYPE_CHECKING:``, which only names types); ``layer_of``
names the layer a module belongs to: a package under ``node/``, a loose module of
``node/`` (``node.config``), or ``transport``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("node", "transport")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted(p for top in PROJECT for p in (ROOT / top).rglob("*.py"))


def type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (imported for annotations only)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def imports(path: Path) -> set[str]:
    """The project modules ``path`` imports (``from pkg import mod`` counts ``pkg.mod``
    when that is a module of its own)."""
    tree = ast.parse(path.read_text())
    skip = type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            for alias in node.names:
                if is_module(f"{node.module}.{alias.name}"):
                    found.add(f"{node.module}.{alias.name}")
    return {m for m in found if m.split(".")[0] in PROJECT}


def is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "transport":
        return "transport"
    if len(parts) == 1:
        return "node"
    if (ROOT / "node" / parts[1]).is_dir():
        return parts[1]
    return f"node.{parts[1]}"
