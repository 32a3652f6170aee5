"""The backend registry: entry points in the ``crossppl.backends`` group, read by the CLI and
the API; a package outside crossppl adds a backend with an entry point of its own."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from crossppl.backends import (
    Backend,
    backend_class,
    backend_names,
    backend_status,
    get_backend,
)

from crossppl.errors import ConfigError

CLI = [sys.executable, "-c", "import sys; from crossppl.cli import main; sys.exit(main())"]


def test_every_registered_backend_loads_and_names_itself():
    names = backend_names()
    assert len(names) >= 3
    for name in names:
        backend = get_backend(name)
        assert isinstance(backend, Backend) and backend.name == name
        assert backend.engines and set(backend.engine_packages) <= set(backend.engines)


def test_unknown_backend_names_the_registered_ones():
    with pytest.raises(ConfigError, match="unknown backend 'nope'; choose one of") as info:
        get_backend("nope")
    assert all(name in str(info.value) for name in backend_names())


def test_status_lists_every_engine_with_a_reason_when_it_cannot_run():
    status = {s.backend: s for s in backend_status()}
    assert tuple(status) == backend_names()
    for backend in status.values():
        assert not backend.problem
        engines = {e.engine: e for e in backend.engines}
        assert tuple(engines) == get_backend(backend.backend).engines
        assert sum(e.default for e in engines.values()) <= 1
        for e in engines.values():
            if e.usable:
                assert e.versions and not e.reason
            else:
                assert e.reason and not e.default


def _toy_distribution(root: Path) -> Path:
    """A package outside crossppl, installed as a folder on sys.path: a module with a Backend
    subclass and a dist-info whose entry point registers it."""
    (root / "toy_backend.py").write_text(textwrap.dedent('''
        from crossppl.backends.base import Backend

        class ToyBackend(Backend):
            name = "toy"
            engines = ("toyengine",)
            packages = ()
            engine_packages = {"toyengine": ("no-such-distribution-xyz",)}

            def emit(self, model):
                return f"toy program of {model.name}\\n"

            def sample(self, model, program, config, engine):
                raise NotImplementedError

            def log_density(self, model, program, points):
                raise NotImplementedError
        '''))
    info = root / "toy_backend-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[crossppl.backends]\ntoy = toy_backend:ToyBackend\n")
    return root


@pytest.mark.slow
def test_a_package_outside_crossppl_adds_a_backend_by_entry_point(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(_toy_distribution(tmp_path))}
    listing = subprocess.run([*CLI, "backends", "--json"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    status = {s["backend"]: s for s in json.loads(listing.stdout)}
    assert list(status)[-1] == "toy"  # after crossppl's own (default order 100)
    (engine,) = status["toy"]["engines"]
    assert engine["engine"] == "toyengine" and not engine["usable"]
    assert "no-such-distribution-xyz" in engine["reason"]

    emitted = subprocess.run([*CLI, "emit", "rats", "--backend", "toy"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert emitted.returncode == 0, emitted.stderr
    assert emitted.stdout == "toy program of rats\n"


@pytest.mark.slow
def test_backends_command_prints_one_row_per_engine():
    out = subprocess.run([*CLI, "backends"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["backend", "engine", "usable"]
    rows = [line.split()[:2] for line in lines[1:]]
    assert rows == [[b, e] for b in backend_names() for e in get_backend(b).engines]


@pytest.mark.slow
def test_backends_command_survives_a_closed_pipe():
    """``crossppl backends | head -0``: the reader is gone before anything is written; the
    command ends quietly (exit 0, no traceback) instead of crashing on BrokenPipeError."""
    read, write = os.pipe()
    os.close(read)
    try:
        out = subprocess.run([*CLI, "backends", "--json"], stdout=write, stderr=subprocess.PIPE,
                             text=True, timeout=120)
    finally:
        os.close(write)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a module but its docstrings, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docstrings]


def test_no_backend_or_engine_name_is_written_into_compare_the_api_or_the_cli():
    """compare/ and the API/CLI/runner learn backends from the registry: none names one."""
    names = set(backend_names())
    for name in backend_names():
        names.update(backend_class(name).engines)
    root = Path(__file__).resolve().parent.parent
    files = sorted((root / "compare").glob("*.py")) + sorted((root / "crossppl").glob("*.py"))
    assert len(files) > 10
    found = [f"{f.relative_to(root)}:{line}: {value!r}" for f in files
             for line, value in _string_constants(f) if value in names]
    assert not found, "backend or engine names written outside the registry:\n" + "\n".join(found)
