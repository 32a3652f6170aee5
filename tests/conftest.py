"""Shared fixtures: the backend parametrization every conformance test runs over (as ibis does)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def rats():
    """The bundled Rats model."""
    from crossppl.models import load_spec

    return load_spec("rats")
