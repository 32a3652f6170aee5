"""Shared fixtures: the backend parametrization every conformance test runs over (as ibis does)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from crossppl.backends import backend_names
from crossppl.models import DISTRIBUTIONS, bundled_specs
from crossppl.models.conversions import to_native
from crossppl.models.ir import Dist, Role, Var

#: Every registered backend (entry points); conformance tests are parametrized over these.
BACKENDS = backend_names()

#: Whether PyStan, the Stan backend's default engine, can load what it builds on this Python.
#: The engine cannot on 3.13: httpstan 4.17's wheel links every model with a stan_services.o
#: built for CPython 3.10. Tests marked ``pystan`` are then strict xfails (as ibis marks what a
#: backend cannot do), so a fixed httpstan turns them into failures to clean up.
PYSTAN_LOADS = sys.version_info < (3, 13)
PYSTAN_GAP = ("the engine cannot: httpstan 4.17's models do not load on Python 3.13 "
              "(its stan_services.o is built for 3.10)")

#: ``BACKENDS`` as parameters: the Stan one carries the ``pystan`` marker.
BACKEND_PARAMS = tuple(pytest.param(b, marks=pytest.mark.pystan) if b == "stan" else b
                       for b in BACKENDS)

#: The backends whose default engine runs on this Python (the others to compare one with).
RUNNABLE = tuple(b for b in BACKENDS if b != "stan" or PYSTAN_LOADS)


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(config, items):
    """Tests marked ``pystan`` build a Stan program: they are ``slow`` too (a cold build takes
    a minute), out of the default loop. On a Python where PyStan cannot load its builds they
    are strict xfails that must fail the way the marker says: ``raises=`` (default
    ``EngineError``)."""
    for item in items:
        if item.get_closest_marker("pystan") is not None:
            item.add_marker(pytest.mark.slow)
    if PYSTAN_LOADS:
        return
    from crossppl.errors import EngineError

    for item in items:
        marker = item.get_closest_marker("pystan")
        if marker is not None:
            item.add_marker(pytest.mark.xfail(
                strict=True, raises=marker.kwargs.get("raises", EngineError), reason=PYSTAN_GAP))

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"

# Compiled-program caches of a test run live with the run, unless the user points them elsewhere.
os.environ.setdefault("CROSSPPL_CACHE_DIR", str(REPO / ".cache"))


@pytest.fixture(params=BACKEND_PARAMS)
def backend_name(request) -> str:
    """Each backend in turn."""
    return request.param


@pytest.fixture(params=tuple(bundled_specs()))
def zoo_model(request) -> str:
    """Each bundled model in turn, by name (the zoo's conformance suite runs over these)."""
    return request.param


@pytest.fixture(scope="session")
def rats():
    """The bundled Rats model."""
    from crossppl.models import load_spec

    return load_spec("rats")


#: A small spec with every kind of [generated] quantity (scalar, vector, discrete, chained).
PREDICTIVE = FIXTURES / "specs" / "predictive.toml"


@pytest.fixture(scope="session")
def predictive():
    """The predictive fixture model."""
    from crossppl.models import load_spec

    return load_spec(PREDICTIVE)


def assert_matches_golden(emitted: str, name: str, test_file: str) -> None:
    """Compare an emitted program with ``tests/golden/<name>``; ``CROSSPPL_UPDATE_GOLDEN=1``
    rewrites the golden file (review the diff first)."""
    import difflib

    golden = GOLDEN / name
    if os.environ.get("CROSSPPL_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(emitted, encoding="utf-8")
    expected = golden.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(expected.splitlines(True), emitted.splitlines(True),
                                        f"golden/{name}", "emitted"))
    assert emitted == expected, (
        f"the emitted program differs from tests/golden/{name}; if the change is intended, "
        f"review it and regenerate with CROSSPPL_UPDATE_GOLDEN=1 .venv/bin/pytest "
        f"{test_file} -k golden\n{diff}"
    )


#: Every (row name, parameterization key) of the distribution table.
TABLE_KEYS = {(row.name, p.key) for row in DISTRIBUTIONS.values() for p in row.parameterizations}


def table_dist(row_name: str, key: str) -> Dist:
    """A distribution of the table in parameterization ``key``, each argument a scalar
    parameter named after it."""
    params = DISTRIBUTIONS[row_name].parameterization(key).params
    return Dist(row_name, key, tuple((p, Var(p, Role.PARAM, ())) for p in params), ())


def untranslatable(rules) -> set[tuple[str, str]]:
    """The (row, parameterization) pairs of the table that a backend's ``rules`` write neither
    natively nor through the conversion table."""
    return {key for key in TABLE_KEYS if to_native(table_dist(*key), rules) is None}


def evaluate(node, values=None):
    """The value of an IR expression (spec functions and the conversion helpers) with the
    variables' values by name; numpy broadcasting, for expressions over at most one dim."""
    import numpy as np
    from crossppl.models.conversions import HELPERS
    from crossppl.models.ir import Binary, Call, Const, Unary
    from scipy import special

    funcs = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "inv_logit": special.expit,
             "logit": special.logit, "abs": np.abs, "pow": np.power,
             **{name: h.value for name, h in HELPERS.items()}}
    ops = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
           "pow": np.power}
    if isinstance(node, Const):
        return float(node.value)
    if isinstance(node, Var):
        return np.asarray(values[node.name], dtype=float)
    if isinstance(node, Unary):
        return -evaluate(node.operand, values)
    if isinstance(node, Binary):
        return ops[node.op](evaluate(node.left, values), evaluate(node.right, values))
    if isinstance(node, Call):
        return funcs[node.func](*(evaluate(a, values) for a in node.args))
    raise AssertionError(node)
