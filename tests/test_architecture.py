"""The shape of the code, checked: who commits, what is imported, which names are used.

These read the source (and import the modules); they need no database.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import app

APP = Path(app.__file__).resolve().parent
# Names with a leading underscore that their libraries document as public.
DOCUMENTED = {
    "_get_current_object",  # werkzeug.local.LocalProxy (Flask's docs)
    "_asdict", "_replace", "_fields", "_make",  # namedtuple
}  # fmt: skip
# Names Python and the libraries' public decorators set on a class themselves.
AUTOMATIC = {
    "_is_protocol",
    "_is_runtime_protocol",
    "_abc_impl",
    "_sa_class_manager",
    "_compiler_dispatch",
    "_declared_fields",  # marshmallow's SchemaMeta sets these two on every Schema
    "_hooks",
    "_field_map",  # asn1crypto's Sequence._setup() sets these three on a class at its first use
    "_field_ids",
    "_precomputed_specs",
}


def _sources(*parts: str):
    root = APP.joinpath(*parts)
    return sorted(root.rglob("*.py")) if root.is_dir() else [root]


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _own_underscore_names() -> set[str]:
    """Every ``_name`` the platform itself defines (functions, classes, attributes, variables, arguments)."""
    names: set[str] = set()
    for path in _sources():
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.keyword) and node.arg:
                names.add(node.arg)
    return {n for n in names if n.startswith("_")}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) and name not in DOCUMENTED


def test_views_and_apis_never_commit_or_roll_back():
    """Commands own their transaction (app.services.command); a view only parses, calls and renders."""
    found = []
    for path in _sources("views") + _sources("web.py") + _sources("security.py"):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and node.attr in ("commit", "rollback"):
                found.append(f"{path.relative_to(APP.parent)}:{node.lineno} .{node.attr}")
    assert found == []


def test_no_private_name_of_another_library_is_used():
    """No ``obj._name`` of SQLAlchemy, FAB, Flask-JWT-Extended, Flask-Limiter...: an upgrade may drop it."""
    own = _own_underscore_names()
    found = []
    for path in _sources():
        for node in ast.walk(_tree(path)):
            name = None
            if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
                name = node.attr
            elif (
                isinstance(node, ast.ImportFrom)
                and (node.level or 0) == 0
                and not (node.module or "").startswith("app")
            ):
                name = next((a.name for a in node.names if _private(a.name)), None)
            if name:
                found.append(f"{path.relative_to(APP.parent)}:{node.lineno} {name}")
    assert found == []


def _app_modules():
    for info in pkgutil.walk_packages([str(APP)], prefix="app."):
        if info.name.startswith(("app.simulators", "app.kit.__main__")):
            continue
        yield importlib.import_module(info.name)


def test_no_private_method_of_another_library_is_overridden():
    """A subclass of a library class overrides only its public methods (FAB's ``_delete``... are not ours)."""
    found = []
    for module in _app_modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            foreign = [base for base in cls.__mro__[1:] if not base.__module__.startswith("app") and base is not object]
            for name in vars(cls):
                if _private(name) and name not in AUTOMATIC and any(name in vars(base) for base in foreign):
                    found.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    assert found == []


def _imports_of(path: Path, module: str) -> set[str]:
    out = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("app."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.rsplit(".", node.level)[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("app"):
                out.add(target)
                out.update(f"{target}.{a.name}" for a in node.names)
    return out


def _module_name(path: Path) -> str:
    rel = path.relative_to(APP.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@pytest.mark.parametrize("layer", ["services", "models", "lib", "connectors"])
def test_no_import_cycle_between_modules_of_a_layer(layer):
    """Imports run downward; two modules of one layer never import each other, directly or round about."""
    paths = _sources(layer)
    names = {_module_name(p): p for p in paths}
    graph = {}
    for name, path in names.items():
        graph[name] = {t for t in _imports_of(path, name) if t in names and t != name}
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in seen and not nxt.startswith(start + "."):
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    # a package's __init__ re-exporting its own modules is not a cycle
    cycles = [c for c in cycles if not _inside_one_package(c)]
    assert sorted(set(cycles))[:10] == []


def _inside_one_package(cycle: str) -> bool:
    mods = cycle.split(" -> ")
    root = min(mods, key=len)
    return all(m == root or m.startswith(root + ".") for m in mods)
