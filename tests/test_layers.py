"""Imports point only down the layers, read from the source with ``ast``.

Layers, bottom first: errors, config and progress (and the bundled data); ``models/``;
``backends/``; ``compare/`` (pure statistics); the API, runner, comparison, prior and command
line (``crossppl/``). A module imports from its own layer or below, at the top of the file or in
a function. An import of crossppl's own module inside a function is kept only where it avoids
loading a heavy library (a PPL, SciPy, pandas, xarray, ...) with the importing module, or in a
package's ``__init__`` (``import crossppl`` stays light: its API loads on first use).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Source folder -> the package it installs as (pyproject's package-dir).
PACKAGES = {"crossppl": "crossppl", "models": "crossppl.models",
            "backends": "crossppl.backends", "compare": "crossppl.compare",
            "data": "crossppl.data"}
#: Module (or package) -> layer, bottom 0; the longest matching prefix wins.
LAYERS = {"crossppl.errors": 0, "crossppl.config": 0, "crossppl.progress": 0,
          "crossppl.data": 0, "crossppl.models": 1, "crossppl.backends": 2,
          "crossppl.compare": 3, "crossppl": 4}
LAYER_NAMES = ("errors/config/progress", "models", "backends", "compare",
               "api/runner/comparison/prior/cli")
#: Third-party modules worth a lazy import (those ``crossppl --help`` must not load, see
#: tests/test_cli_outputs.py, and their kin).
HEAVY = ("scipy", "pandas", "xarray", "arviz", "arviz_base", "arviz_stats", "matplotlib",
         "pymc", "pytensor", "jax", "numpyro", "nutpie", "httpstan", "stan", "cmdstanpy",
         "pyjags", "h5netcdf", "netCDF4")


@dataclass(frozen=True)
class Import:
    """One import statement's crossppl (or third-party) target."""

    file: str
    line: int
    target: str
    in_function: bool
    in_package_init: bool


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            out[name] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, function or child.name)
                continue
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*up, *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                           for a in child.names]
            rel = str(path.relative_to(REPO))
            init = path.name == "__init__.py"
            found.extend(Import(rel, child.lineno, t, function is not None, init)
                         for t in targets)
            visit(child, function)

    visit(tree, None)
    return found


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _own(target: str) -> bool:
    return target == "crossppl" or target.startswith("crossppl.")


def _loaded_with(module: str) -> set[str]:
    """Every module importing ``module`` loads (its packages too), by top-level imports."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            if prefix in seen:
                continue
            seen.add(prefix)
            todo += [i.target for i in IMPORTS.get(prefix, ()) if not i.in_function]
    return seen


def _heavy(module: str) -> str | None:
    """The heavy library importing ``module`` loads, if any."""
    return next((m for m in sorted(_loaded_with(module)) if m.split(".")[0] in HEAVY), None)


def test_every_module_and_import_is_seen():
    assert {"crossppl.cli", "crossppl.models.spec", "crossppl.compare.density",
            "crossppl.backends.stan.backend"} <= set(MODULES)
    assert any(i.target == "crossppl.config" and not i.in_function
               for i in IMPORTS["crossppl.models.spec"])
    assert _heavy("crossppl.compare.summary") and not _heavy("crossppl.config")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    layer = _layer(module)
    wrong = [
        f"{i.file}:{i.line}: {module} (layer {LAYER_NAMES[layer]}) imports {i.target} "
        f"(layer {LAYER_NAMES[_layer(i.target)]}); a module imports only from its own layer "
        "or below (tests/test_layers.py)"
        for i in IMPORTS[module] if _own(i.target) and _layer(i.target) > layer
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_own_modules_are_imported_inside_a_function_only_to_stay_light(module):
    wrong = [
        f"{i.file}:{i.line}: {i.target} is imported inside a function but loads no heavy "
        f"library ({', '.join(HEAVY[:4])}, ...); import it at the top of the file "
        "(tests/test_layers.py)"
        for i in IMPORTS[module]
        if _own(i.target) and i.in_function and not i.in_package_init and not _heavy(i.target)
    ]
    assert not wrong, "\n".join(wrong)
