"""Imports only go downward through the layers of the design (and core stays pure numpy/numba)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module prefix -> the project modules it may import (besides itself)
ALLOWED = {
    "vecstore.core": (),
    "vecstore.errors": (),
    "vecstore.types": ("vecstore.errors",),
    "vecstore.filters": ("vecstore.errors", "vecstore.types"),
    "vecstore.storage": ("vecstore.errors", "vecstore.types"),
    "vecstore.index": ("vecstore.core", "vecstore.errors", "vecstore.types"),
    "vecstore.engine": (
        "vecstore.core",
        "vecstore.index",
        "vecstore.filters",
        "vecstore.storage",
        "vecstore.errors",
        "vecstore.types",
    ),
    "vecstore.rpc": ("vecstore.errors", "vecstore.types", "vecstore.filters"),
    "vecstore": ("vecstore", "client"),  # the facade re-exports the public API (vecstore.Client lazily)
    "server": ("vecstore",),
    "client": ("vecstore.rpc", "vecstore.types", "vecstore.errors", "vecstore.filters"),
    "bench": ("vecstore", "client"),
}
PROJECT = ("vecstore", "server", "client", "bench")
# third-party modules a layer must not touch
FORBIDDEN = {
    "vecstore.core": ("pyarrow", "lmdb", "logging", "os", "pathlib", "io", "grpc"),
    "vecstore.engine": ("grpc",),
    "vecstore.storage": ("numba", "grpc"),
    "vecstore.index": ("lmdb", "os", "pathlib"),
    "vecstore.filters": ("lmdb", "numba"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                names.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.append(node.module)
    return names


def _layer(module: str, table: dict) -> str | None:
    matches = [prefix for prefix in table if module == prefix or module.startswith(prefix + ".")]
    return max(matches, key=len) if matches else None


def _is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_imports_follow_the_layers():
    violations = []
    files = [p for top in PROJECT if (ROOT / top).exists() for p in (ROOT / top).rglob("*.py")]
    assert files, "no project files found"
    for path in files:
        module = _module_name(path)
        layer = _layer(module, ALLOWED)
        assert layer is not None, f"{module} belongs to no layer; add it to ALLOWED"
        for name in _imports(path, module):
            if name.split(".")[0] in PROJECT:
                if _is_within(name, layer):
                    continue
                if not any(_is_within(name, allowed) for allowed in ALLOWED[layer]):
                    violations.append(f"{module} imports {name}")
            forbidden_layer = _layer(module, FORBIDDEN)
            if forbidden_layer and name.split(".")[0] in FORBIDDEN[forbidden_layer]:
                violations.append(f"{module} imports {name}, which its layer must not use")
    assert not violations, "\n".join(violations)


def test_the_checker_sees_a_violation():
    # a storage module importing the engine must be caught by the rule table
    assert not any(_is_within("vecstore.engine.collection", a) for a in ALLOWED["vecstore.storage"])
    assert _layer("vecstore.storage.manifest", ALLOWED) == "vecstore.storage"
