"""The package's import structure, read from its source with ast (nothing is imported).

Three rules, each a test:

* no module uses another module's private names (``from .x import _y``, ``x._y``);
* the modules' module-level imports form no cycle;
* a module imports a sibling module inside a function only when that sibling pulls in a heavy
  optional dependency (:data:`HEAVY_DEPENDENCIES`) at import time, so that the importing path
  stays free of it.

:data:`KNOWN_VIOLATIONS` is empty: a violation may be listed there only while a module is being
reworked, and a listed one that no longer occurs fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "tokendim_widgets"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

#: Third-party packages whose import is slow or optional. A function-level import of a sibling
#: module is allowed only if that module imports one of them at module level (directly or
#: through its own module-level imports): the lazy import keeps the caller's path free of it.
HEAVY_DEPENDENCIES = {
    "torch": "a second or more to import; PCA previews and analysis stay torch-free",
    "transformers": "model loading only",
    "safetensors": "model loading only",
    "accelerate": "optional (large models)",
    "gguf": "optional (GGUF files)",
    "umap": "optional (UMAP projections)",
    "pynndescent": "optional, comes with umap-learn",
    "numba": "optional, comes with umap-learn",
    "ray": "optional (sweeps on a cluster)",
    "pyarrow": "optional (Parquet export)",
    "datasets": "optional (prompt sets from the hub)",
    "anywidget": "the widgets only; the library works without a front end",
    "traitlets": "the widgets only",
    "matplotlib": "optional (notebook plots)",
}

#: TO BE EMPTIED: violations in modules reworked elsewhere (analysis, cli, export,
#: extraction, models, prompts, session, sweeps, widgets), one string per violation as the
#: tests word it. Remove an entry when its module is fixed (a stale entry fails).
KNOWN_VIOLATIONS: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # dotted module name imported
    names: tuple[str, ...]  # names taken from it (from-imports), else ()
    line: int
    module_level: bool  # False: inside a function
    type_checking: bool  # under ``if TYPE_CHECKING:``


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _package_of(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = _package_of(importer).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(
    node: ast.AST, in_function: bool, in_type_checking: bool
) -> list[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            found.append((child, in_function, in_type_checking))
        func = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        tc = isinstance(child, ast.If) and _is_type_checking(child.test)
        found += _walk(child, in_function or func, in_type_checking or tc)
    return found


def imports_of(name: str) -> tuple[list[Import], list[str], dict[str, str]]:
    """(imports of package modules, third-party top-level packages imported at module level
    outside TYPE_CHECKING, local names bound to package modules)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found: list[Import] = []
    external: list[str] = []
    aliases: dict[str, str] = {}
    for node, in_function, type_checking in _walk(tree, False, False):
        runtime_module_level = not in_function and not type_checking
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    target = alias.name
                    found.append(
                        Import(name, target, (), node.lineno, not in_function, type_checking)
                    )
                    if alias.asname:
                        aliases[alias.asname] = target
                elif runtime_module_level:
                    external.append(alias.name.split(".")[0])
            continue
        target = _resolve(name, node)
        if target.split(".")[0] != PACKAGE:
            if runtime_module_level:
                external.append(target.split(".")[0])
            continue
        names = []
        for alias in node.names:  # ``from . import knn``: the submodule itself
            sub = f"{target}.{alias.name}"
            if sub in MODULES:
                found.append(Import(name, sub, (), node.lineno, not in_function, type_checking))
                aliases[alias.asname or alias.name] = sub
            else:
                names.append(alias.name)
        if target in MODULES and names:
            found.append(
                Import(name, target, tuple(names), node.lineno, not in_function, type_checking)
            )
    return found, external, aliases


IMPORTS = {name: imports_of(name) for name in MODULES}


def short(name: str) -> str:
    """A module's name as the messages give it (without the package's)."""
    return name.removeprefix(PACKAGE + ".")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _check(violations: list[str], what: str) -> None:
    """Fail on violations not in KNOWN_VIOLATIONS, and on listed ones of this kind that are
    gone (``what`` is the prefix of this test's entries)."""
    new = sorted(set(violations) - KNOWN_VIOLATIONS)
    gone = sorted(v for v in KNOWN_VIOLATIONS if v.startswith(what) and v not in violations)
    assert not new, "new violations:\n" + "\n".join(new)
    assert not gone, "fixed: remove from KNOWN_VIOLATIONS:\n" + "\n".join(gone)


def private_name_uses() -> list[str]:
    out = []
    for name in MODULES:
        found, _, aliases = IMPORTS[name]
        for imp in found:
            for taken in imp.names:
                if _private(taken) and imp.target != name:
                    out.append(f"private: {short(name)} imports {short(imp.target)}.{taken}")
        tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _private(node.attr)
                and aliases[node.value.id] != name
            ):
                out.append(
                    f"private: {short(name)} uses {short(aliases[node.value.id])}.{node.attr}"
                )
    return sorted(set(out))


def module_level_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for imp in IMPORTS[name][0]:
            if imp.module_level and not imp.type_checking and imp.target != name:
                graph[name].add(imp.target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def heavy_at_import(name: str, graph: dict[str, set[str]]) -> set[str]:
    """The heavy dependencies importing ``name`` pulls in (module-level, transitively)."""
    seen, todo, heavy = set(), [name], set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        heavy |= set(IMPORTS[mod][1]) & set(HEAVY_DEPENDENCIES)
        todo += list(graph[mod])
    return heavy


def lazy_sibling_imports() -> list[str]:
    graph = module_level_graph()
    out = []
    for name in MODULES:
        for imp in IMPORTS[name][0]:
            if imp.module_level or imp.target == name:
                continue
            if imp.target.startswith(name + ".") or name.startswith(imp.target + "."):
                continue  # a package's own submodule, or an enclosing package (imported)
            if not heavy_at_import(imp.target, graph):
                out.append(f"lazy: {short(name)} imports {short(imp.target)} inside a function")
    return sorted(set(out))


# ---------------------------------------------------------------------------------------------


def test_the_parser_sees_what_the_rules_are_about():
    # The rules would pass vacuously if imports were not found: check known facts.
    graph = module_level_graph()
    assert f"{PACKAGE}.knn" in graph[f"{PACKAGE}.graphs"]
    assert "torch" in heavy_at_import(f"{PACKAGE}.knn", graph)
    assert "torch" not in heavy_at_import(f"{PACKAGE}.projection", graph)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_rules_catch_what_they_forbid(tmp_path, monkeypatch):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import _hidden\nfrom . import b as bb\nx = bb._other\n")
    (pkg / "b.py").write_text("import torch\nfrom .a import x\n")
    (pkg / "c.py").write_text("def f():\n    from .d import y\n    from .b import z\n")
    (pkg / "d.py").write_text("y = 1\n")
    (pkg / "sub" / "e.py").write_text("from .. import a\nfrom ..d import _p\n")
    monkeypatch.setitem(globals(), "ROOT", pkg)
    modules = {module_name(p): p for p in sorted(pkg.rglob("*.py"))}
    monkeypatch.setitem(globals(), "MODULES", modules)
    monkeypatch.setitem(globals(), "IMPORTS", {name: imports_of(name) for name in modules})
    assert private_name_uses() == [
        "private: a imports b._hidden",
        "private: a uses b._other",
        "private: sub.e imports d._p",
    ]
    assert cycles(module_level_graph()) == [[f"{PACKAGE}.a", f"{PACKAGE}.b"]]
    assert lazy_sibling_imports() == ["lazy: c imports d inside a function"]


def test_no_module_uses_another_modules_private_names():
    _check(private_name_uses(), "private:")


def test_module_level_imports_form_no_cycle():
    found = [f"cycle: {' -> '.join(map(short, c))}" for c in cycles(module_level_graph())]
    _check(found, "cycle:")


def test_function_level_imports_of_siblings_only_for_heavy_dependencies():
    _check(lazy_sibling_imports(), "lazy:")


def test_known_violations_are_well_formed():
    for entry in KNOWN_VIOLATIONS:
        assert entry.split(":")[0] in ("private", "cycle", "lazy"), entry
