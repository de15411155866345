"""The runtime declares exactly the namespace-package distributions it imports (`azure-*`, `opentelemetry-*`).

deptry checks every other dependency in `./dev test`, by top-level module name; under a namespace package
(`azure`, `opentelemetry`) that name is shared by every distribution, so here each imported module is traced to
the distribution whose files hold it.
"""

from __future__ import annotations

import ast
import re
import tomllib
from functools import cache
from importlib.metadata import distributions

from harness.checkout import REPOSITORY_ROOT, shipped_packages

RUNTIME_PACKAGES = tuple(sorted(shipped_packages()))
NAMESPACES = ("azure", "opentelemetry")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_runtime_distributions() -> set[str]:
    project = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text())["project"]
    names = {canonical(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]) for requirement in project["dependencies"]}
    return {name for name in names if name.startswith(tuple(f"{namespace}-" for namespace in NAMESPACES))}


def imported_namespace_modules() -> set[str]:
    """Modules under the namespaces that runtime code imports (`from a.b import c` counts `a.b.c` if a module)."""
    modules: set[str] = set()
    for package in RUNTIME_PACKAGES:
        for source in (REPOSITORY_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(), str(source))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module)
                    modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {module for module in modules if module.split(".", 1)[0] in NAMESPACES}


@cache
def owners() -> dict[str, str]:
    """Each installed file of a namespace distribution (its path inside site-packages) and the distribution."""
    owned: dict[str, str] = {}
    for distribution in distributions():
        name = canonical(distribution.metadata["Name"] or "")
        if name.startswith(tuple(f"{namespace}-" for namespace in NAMESPACES)):
            owned.update(dict.fromkeys((file.as_posix() for file in distribution.files or []), name))
    return owned


def owning_distribution(module: str) -> str | None:
    """The distribution holding the module's file (found without importing it); None for a name that is no module
    (an imported class) or a bare namespace."""
    path = module.replace(".", "/")
    return owners().get(f"{path}/__init__.py") or owners().get(f"{path}.py")


def test_the_runtime_declares_exactly_the_namespace_distributions_it_imports() -> None:
    imported = {owner for module in imported_namespace_modules() if (owner := owning_distribution(module))}
    assert imported, "no module traced to a distribution: the check would prove nothing"
    declared = declared_runtime_distributions()
    assert sorted(imported - declared) == [], "imported by the runtime but not a runtime dependency"
    assert sorted(declared - imported) == [], "runtime dependencies the runtime never imports"
