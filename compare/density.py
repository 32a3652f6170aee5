"""Before sampling results: do the programs define the same density?

Every program's log density is evaluated at the same points (constrained values, no Jacobian).
Two programs of the same model differ by a constant (normalizing constants may be dropped), so
the spread of their difference across points (its largest deviation from its median) must be ~0.

The rule, per pair of programs:

* **Whole density**: the spread of the difference of the two log densities must be within
  ``ATOL + RTOL * max(1, scale)``, ``scale`` the median magnitude of the two log densities.
  This tolerance grows with the whole model's log density (thousands of nats for Rats), so a
  slip in one small term (a prior's precision 1e-4 for 1e-6, a change of ~1e-4 nats across the
  points) can hide under it.
* **Per variable**: where both programs expose per-variable terms (PyMC, NumPyro, Stan: the
  prior of each parameter, the likelihood of each observed variable, under the spec's names),
  each variable's terms must differ by a constant within the same rule with ``scale`` that
  term's own magnitude. A variable whose terms differ non-constantly is a *culprit*, and the
  pair is a mismatch even when the whole density is within its tolerance,
* **unless the culprits' differences cancel**: the sum of the culprits' terms plus the terms
  only one program has (a ``pm.Potential``, Stan's ``target +=`` catch-all) differs by a
  constant within the tolerance of those terms' summed magnitudes. Then the two programs write
  the same joint density factorized otherwise (``p(a) p(b | a)`` as ``p(b) p(a | b)``, or part
  of a prior moved into a potential), which is no mismatch and names no culprit.

A value that is -inf (or NaN) in one program only is a non-constant difference; -inf in both is
skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["ATOL", "RTOL", "DensityCheck", "check_density", "constant_difference", "tolerance"]

#: Relative tolerance of the spread of a difference, scaled by the log density's (or the term's)
#: magnitude.
RTOL = 1e-7
#: Absolute tolerance of the spread of a difference.
ATOL = 1e-6

PAIR_COLUMNS = ["pair", "a", "b", "spread", "constant", "tolerance", "density_constant",
                "terms_constant"]
TERM_COLUMNS = ["pair", "variable", "spread", "constant", "tolerance"]


def tolerance(scale: float) -> float:
    """The largest spread that counts as constant for a log density (or term) of magnitude
    ``scale``."""
    return ATOL + RTOL * max(1.0, scale)


def _spread(a: np.ndarray, b: np.ndarray, scale: np.ndarray | None = None
            ) -> tuple[float, float]:
    """Spread of ``a - b`` and its tolerance; ``scale`` (per point) defaults to ``|a|, |b|``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    finite = np.isfinite(a) & np.isfinite(b)
    if not finite.all():
        # -inf on one side only is a disagreement; on both sides, nothing to compare there.
        lone = np.isfinite(a) != np.isfinite(b)
        if lone.any():
            return float("inf"), tolerance(0.0)
    diff = a[finite] - b[finite]  # inf - inf (both sides infinite) never computed
    if diff.size == 0:
        return 0.0, tolerance(0.0)
    spread = float(np.max(np.abs(diff - np.median(diff))))
    if scale is None:
        magnitude = float(np.median(np.abs(np.concatenate([a[finite], b[finite]]))))
    else:
        magnitude = float(np.median(np.asarray(scale, float)[finite]))
    return spread, tolerance(magnitude)


def constant_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, bool]:
    """Largest deviation of ``a - b`` from its median, and whether it counts as constant."""
    spread, tol = _spread(a, b)
    return spread, spread <= tol


@dataclass
class DensityCheck:
    """Pairwise spreads of log-density differences, and per-variable culprits.

    ``pairs``: one row per pair (``pair``, ``a``, ``b``; ``spread`` and ``tolerance`` of the
    whole density's difference; ``density_constant``, the whole-density rule alone;
    ``terms_constant``, the per-variable rule, None where the two programs do not both expose
    terms; ``constant``, both rules). ``terms``: one row per pair and variable both programs
    have a term of (``spread``, ``tolerance``, ``constant``).
    """

    pairs: pd.DataFrame
    terms: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_points: int = 0

    @property
    def ok(self) -> bool:
        """Whether every pair differs by a constant."""
        return bool(self.pairs["constant"].all()) if len(self.pairs) else True

    def culprits(self, pair: str) -> list[str]:
        """Variables whose terms differ non-constantly for ``pair`` (none when the pair's
        densities agree, e.g. where the differences cancel)."""
        if self.terms.empty:
            return []
        row = self.pairs[self.pairs["pair"] == pair]
        if len(row) and bool(row["constant"].iloc[0]):
            return []
        rows = self.terms[(self.terms["pair"] == pair) & ~self.terms["constant"]]
        return list(rows["variable"])


def _terms_constant(ta: Mapping[str, np.ndarray], tb: Mapping[str, np.ndarray],
                    culprits: list[str]) -> bool:
    """Whether the culprits' terms, with the terms only one side has, add up to the same
    density on both sides (the differences cancel)."""
    if not culprits:
        return True
    only_a = [v for v in ta if v not in tb]
    only_b = [v for v in tb if v not in ta]
    side_a = [np.asarray(ta[v], float) for v in (*culprits, *only_a)]
    side_b = [np.asarray(tb[v], float) for v in (*culprits, *only_b)]
    with np.errstate(invalid="ignore"):
        sum_a, sum_b = np.sum(side_a, axis=0), np.sum(side_b, axis=0)
        scale = np.sum(np.abs(side_a), axis=0) + np.sum(np.abs(side_b), axis=0)
    spread, tol = _spread(sum_a, sum_b, scale / 2)
    return spread <= tol


def check_density(
    logps: Mapping[str, np.ndarray],
    terms: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> DensityCheck:
    """Compare log densities (``source -> (n,)``) and optional per-variable terms
    (``source -> {variable -> (n,)}``) by the rule of the module docstring."""
    rows, term_rows = [], []
    terms = terms or {}
    n = 0
    for a, b in itertools.combinations(logps, 2):
        spread, tol = _spread(logps[a], logps[b])
        n = len(logps[a])
        pair = f"{a} vs {b}"
        terms_constant = None
        if a in terms and b in terms:
            ta, tb = terms[a], terms[b]
            culprits = []
            for var in sorted(set(ta) & set(tb)):
                s, t = _spread(ta[var], tb[var])
                term_rows.append({"pair": pair, "variable": var, "spread": s,
                                  "constant": s <= t, "tolerance": t})
                if s > t:
                    culprits.append(var)
            terms_constant = _terms_constant(ta, tb, culprits)
        density_constant = spread <= tol
        rows.append({"pair": pair, "a": a, "b": b, "spread": spread,
                     "constant": density_constant and terms_constant is not False,
                     "tolerance": tol, "density_constant": density_constant,
                     "terms_constant": terms_constant})
    return DensityCheck(
        pd.DataFrame(rows, columns=PAIR_COLUMNS),
        pd.DataFrame(term_rows, columns=TERM_COLUMNS),
        n,
    )
