"""Conformance of the zoo, part two: every bundled model's prior predictive on every backend
(the first part, test_zoo.py, holds the zoo's table, the builds and the log densities).

Each backend simulates the model forward (2000 draws: parameters, derived and generated
quantities, replicated data); the draws must agree, element by element (KS, Holm at 1%), with a
numpy simulation of the model as zoo.md writes it (``ZOO[model].simulate``) and with every other
backend. Stan's prior programs are built once each (about 20-30 s on a cold cache).
"""

from __future__ import annotations

import zlib
from functools import cache

import numpy as np
import pytest
from crossppl.backends import get_backend
from crossppl.compare.prior import prior_agreement
from crossppl.models import DISTRIBUTIONS

from .conftest import BACKEND_PARAMS, RUNNABLE
from .test_zoo import KNOWN_FAILURES, PRIOR_ALPHA, PRIOR_DRAWS, ZOO, _cached, _expect, _model

# -- every backend: prior predictive draws are the zoo's ---------------------------------------
_PRIORS: dict[tuple[str, str], dict[str, np.ndarray] | BaseException] = {}


def _prior(name: str, backend: str) -> dict[str, np.ndarray]:
    """The backend's prior predictive draws of model ``name`` (once per module)."""
    seed = zlib.crc32(f"{name}/{backend}".encode()) % 2**31
    return _cached(_PRIORS, (name, backend),
                   lambda: get_backend(backend).prior_predictive(_model(name), PRIOR_DRAWS, seed))


@cache
def _zoo_prior(name: str) -> dict[str, np.ndarray]:
    """The zoo's prior predictive of model ``name``, simulated with numpy."""
    model = _model(name)
    rng = np.random.default_rng(zlib.crc32(f"{name}/zoo".encode()))
    return ZOO[name].simulate(rng, PRIOR_DRAWS, {d.name: d.value for d in model.data})


def _counts(name: str) -> list[str]:
    model = _model(name)
    return [d.name for d in (*model.observed, *model.generated)
            if DISTRIBUTIONS[d.dist.name].support.kind in ("count", "bounded_count")]


def test_zoo_prior_simulations_hold_every_variable(zoo_model):
    model, sim = _model(zoo_model), _zoo_prior(zoo_model)
    names = [*(s.name for s in model.recorded), *model.observed_names]
    assert sorted(sim) == sorted(names)
    for decl in (*model.recorded, *model.observed):
        assert sim[decl.name].shape == (PRIOR_DRAWS, *(model.dim(d).size for d in decl.dims))


@pytest.mark.parametrize("backend_name", BACKEND_PARAMS)
@pytest.mark.slow
def test_prior_predictive_matches_the_zoo_s(request, zoo_model, backend_name):
    """The backend's forward simulation (priors, derived and generated quantities, replicated
    data) has the distribution of the zoo's numpy simulation: KS per element, Holm at 1%."""
    _expect(request, "prior", zoo_model, backend_name)
    got = _prior(zoo_model, backend_name)
    want = _zoo_prior(zoo_model)
    assert sorted(got) == sorted(want)
    result = prior_agreement({"zoo": want, backend_name: got}, counts=_counts(zoo_model),
                             alpha=PRIOR_ALPHA)
    assert result.ok, f"{zoo_model} on {backend_name}:\n" + "\n".join(result.problems[:10])


@pytest.mark.slow
def test_prior_predictive_agrees_across_backends(zoo_model):
    """All working backends at once (the same tests, every backend against the first)."""
    working = [b for b in RUNNABLE if "prior" not in getattr(
        KNOWN_FAILURES.get((zoo_model, b)), "checks", ())]
    assert len(working) >= 2, f"{zoo_model}: fewer than two backends simulate it"
    result = prior_agreement({b: _prior(zoo_model, b) for b in working},
                             counts=_counts(zoo_model), alpha=PRIOR_ALPHA)
    assert result.ok, f"{zoo_model}:\n" + "\n".join(result.problems[:10])
    # vague Gamma(0.001, 0.001) precisions leave a usable share of about 1/2 per precision
    assert min(result.usable.values()) > 0.05, result.usable
