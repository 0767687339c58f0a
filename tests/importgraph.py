"""The project's imports as read from the source (AST, nothing imported), for tests/test_dependencies.py
and tests/test_layout.py."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("wardwatch", "ingest", "detectors", "alerts", "app", "devservices", "benchmarks")
FIRST_PARTY = frozenset(PACKAGES) | {"tests"}


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    names: tuple[str, ...]  # absolute module names: the module and, for `from M import a`, M.a too
    module_level: bool  # False inside a function or lambda
    where: str  # path:line, the path relative to the root


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(packages=PACKAGES, root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}


def imports(path: Path, root: Path = ROOT) -> list[Import]:
    """Every import statement of the file, relative ones made absolute."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(root)
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[Import] = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append(Import(path, child.lineno, (alias.name,), not in_function, f"{rel}:{child.lineno}"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - child.level + 1]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                found.append(Import(path, child.lineno, (mod, *(f"{mod}.{a.name}" for a in child.names)),
                                    not in_function, f"{rel}:{child.lineno}"))
            walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    walk(tree, False)
    return found


def third_party(imp: Import) -> str | None:
    """The top-level name of a third-party import, or None (standard library, the project's own)."""
    top = imp.names[0].split(".")[0]
    if top in sys.stdlib_module_names or top in FIRST_PARTY or top == "__future__":
        return None
    return top


def first_party_targets(imp: Import, known: dict[str, Path]) -> set[str]:
    """The project's modules an import names (``from detectors import training`` names detectors and
    detectors.training)."""
    return {n for n in imp.names if n in known}
