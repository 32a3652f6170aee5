"""Shared fixtures: the backend parametrization every conformance test runs over (as ibis does)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from crossppl.models import bundled_specs

#: Every backend of crossppl; conformance tests are parametrized over these.
BACKENDS = ("stan", "pymc", "numpyro")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN = Path(__file__).parent / "golden"

# Compiled-program caches of a test run live with the run, unless the user points them elsewhere.
os.environ.setdefault("CROSSPPL_CACHE_DIR", str(REPO / ".cache"))


@pytest.fixture(params=BACKENDS)
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
