"""How the kit and the services depend on each other: no import circles, and the outbox's
and the inbox's tables written only through the kit's builders.

A circle works only as long as every import in it happens at the right moment (one module's
import moved inside a function, or under ``TYPE_CHECKING``, to dodge the other's), and breaks in
a confusing way when someone moves it back. So the import graph of ``kit`` and of each package
under ``apps`` is checked to be acyclic, counting every import: at module level, inside
functions, and under ``TYPE_CHECKING``, except the type-only ones listed in ``TYPE_ONLY``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [
    "kit",
    *sorted(f"apps.{p.name}" for p in (ROOT / "apps").iterdir() if (p / "__init__.py").exists()),
]

# Type-only imports that point back at a module which builds the importer (never run; with
# ``from __future__ import annotations`` they cost nothing at runtime). Each is (importer,
# imported), and must be under TYPE_CHECKING.
TYPE_ONLY = {
    # kit.service builds every service's ServiceDeps; deps' signatures name the Service.
    ("kit.deps", "kit.service"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in {
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        }:
            inside |= {id(n) for n in ast.walk(node)}
    return inside


def imports_of(path: Path, modules: set[str], importer: str = "") -> set[str]:
    """The modules of ``modules`` that ``path`` (module ``importer``) imports, anywhere in it."""
    tree = ast.parse(path.read_text())
    type_only = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from kit import outbox`` imports kit.outbox; ``from kit.db import X`` kit.db
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        for name in names:
            if name in modules and name != importer:
                if (importer, name) in TYPE_ONLY and id(node) in type_only:
                    continue
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = [
        p
        for pkg in PACKAGES
        for p in (ROOT / pkg.replace(".", "/")).rglob("*.py")
        if "migrations" not in p.parts
    ]
    modules = {module_name(p) for p in files}
    # a package's __init__ is imported by its submodules' imports anyway: not an edge
    edges = {}
    for p in files:
        name = module_name(p)
        edges[name] = imports_of(p, modules, name) - {name.rpartition(".")[0]}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                return [*path[path.index(n) :], n]
            if n not in state and (cycle := visit(n)):
                return cycle
        path.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_check_finds_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_a_function_level_import_counts(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from kit import outbox\n")
    assert imports_of(src, {"kit.outbox"}) == {"kit.outbox"}


@pytest.mark.parametrize("package", ["kit", "apps"])
def test_no_import_circles(package: str) -> None:
    edges = {m: deps for m, deps in graph().items() if m.startswith(package)}
    cycle = find_cycle(edges)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


# --- the outbox's and the inbox's columns are known to the kit only ----------------------------

# SQL that writes or reads those tables by name, in a service's own Python (its migrations and
# booking's PL/pgSQL function, whose outbox arguments the kit fills in, aside).
KIT_TABLE_SQL = re.compile(r"\b(?:INTO|FROM|UPDATE|JOIN)\s+(?:outbox|inbox)\b", re.IGNORECASE)
KIT_TABLE_OBJECTS = re.compile(r"\b(?:OUTBOX|INBOX)\b")


def test_services_write_outbox_and_inbox_rows_only_through_the_kit() -> None:
    found = []
    for path in sorted((ROOT / "apps").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if KIT_TABLE_SQL.search(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: SQL on a kit table")
            elif isinstance(node, ast.ImportFrom) and node.module in {"kit.outbox", "kit.inbox"}:
                for alias in node.names:
                    if KIT_TABLE_OBJECTS.fullmatch(alias.name):
                        found.append(
                            f"{path.relative_to(ROOT)}:{node.lineno}: imports {alias.name}"
                        )
    assert found == []
