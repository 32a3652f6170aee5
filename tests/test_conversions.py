"""The conversion table (crossppl.models.conversions): rewrites between parameterizations as IR,
checked numerically against the scipy references."""

from __future__ import annotations

import numpy as np
import pytest
from crossppl.models import DISTRIBUTIONS
from crossppl.models.conversions import derive, lower, to_native
from crossppl.models.ir import Binary, Call, Const, Dist
from crossppl.models.reference_densities import REFERENCES, log_density

from .conftest import TABLE_KEYS, evaluate

#: A value of each argument, by parameter name (inside every support).
VALUES = {"mu": 0.3, "sigma": 1.7, "tau": 0.6, "nu": 4.0, "rate": 1.3, "scale": 0.8,
          "shape": 2.5, "alpha": 1.5, "beta": 2.5, "lower": -1.0, "upper": 2.0, "p": 0.3,
          "logit_p": -0.4, "log_rate": 0.7, "n": 10}
#: A point of each support kind.
POINTS = {"real": 0.4, "positive": 1.1, "unit": 0.35, "interval": 0.2, "binary": 1, "count": 3,
          "bounded_count": 4}


def _const_dist(row: str, key: str) -> Dist:
    params = DISTRIBUTIONS[row].parameterization(key).params
    return Dist(row, key, tuple((p, Const(VALUES[p])) for p in params), ())


@pytest.mark.parametrize(("row", "key"), sorted(TABLE_KEYS))
def test_every_conversion_keeps_the_density(row, key):
    """Rewriting a distribution into each other parameterization of its row leaves its density
    (scipy's) unchanged, with and without lowering the helpers to spec functions."""
    dist = _const_dist(row, key)
    value = POINTS[DISTRIBUTIONS[row].support.kind]
    want = log_density(row, key, value, {p: VALUES[p] for p, _ in dist.args})
    for other in DISTRIBUTIONS[row].parameterizations:
        converted = to_native(dist, {(row, other.key)})
        if converted is None:
            continue
        for node_of in (lambda e: e, lower):
            args = {p: float(evaluate(node_of(a))) for p, a in converted.args}
            got = log_density(row, other.key, value, args)
            np.testing.assert_allclose(got, want, rtol=1e-12,
                                       err_msg=f"{row}: {key} -> {other.key}")


def test_the_classic_rewrites_read_as_ir():
    dist = _const_dist("normal", "tau")
    assert to_native(dist, {("normal", "tau")}) is dist
    sd = to_native(dist, {("normal", "sigma")})
    assert sd.parameterization == "sigma" and sd.arg("sigma") == Call("inv_sqrt", (Const(0.6),), ())
    assert lower(sd.arg("sigma")) == Binary("div", Const(1), Call("sqrt", (Const(0.6),), ()), ())
    assert to_native(_const_dist("inverse_gamma", "scale"), {("gamma", "rate")}) is None


def test_derive_computes_an_argument_a_parameterization_lacks():
    cauchy = _const_dist("cauchy", "sigma")
    assert derive("cauchy", "tau", dict(cauchy.args)) == Call("inv_square", (Const(1.7),), ())
    assert derive("cauchy", "rate", dict(cauchy.args)) is None


def test_constant_helpers_fold_only_where_the_backend_says():
    node = Call("inv", (Const(4),), ())
    assert lower(node, fold=lambda v: Const(v) if v == 0.25 else None) == Const(0.25)
    assert lower(Call("inv", (Const(3),), ()), fold=lambda v: None) == Binary(
        "div", Const(1), Const(3), ())
    assert lower(node, keep={"inv"}) == node


def test_every_row_has_a_reference():
    assert set(REFERENCES) == TABLE_KEYS
