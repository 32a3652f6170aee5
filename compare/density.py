"""Before sampling results: do the programs define the same density?

Every program's log density is evaluated at the same points (constrained values, no Jacobian).
Two programs of the same model differ by a constant (normalizing constants may be dropped), so
the spread of their difference across points must be ~0; a non-constant difference is a
mismatch. Where programs expose per-variable terms, the variables whose terms disagree are named.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["DensityCheck", "check_density", "constant_difference"]

#: Relative tolerance of the spread of a difference, scaled by the log density's magnitude.
RTOL = 1e-7
#: Absolute tolerance of the spread of a difference.
ATOL = 1e-6


def constant_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, bool]:
    """Largest deviation of ``a - b`` from its median, and whether it counts as constant."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    finite = np.isfinite(a) & np.isfinite(b)
    if not finite.all():
        # -inf on one side only is a disagreement; on both sides, nothing to compare there.
        lone = np.isfinite(a) != np.isfinite(b)
        if lone.any():
            return float("inf"), False
    diff = (a - b)[finite]
    if diff.size == 0:
        return 0.0, True
    spread = float(np.max(np.abs(diff - np.median(diff))))
    scale = float(np.median(np.abs(np.concatenate([a[finite], b[finite]]))))
    return spread, spread <= ATOL + RTOL * max(1.0, scale)


@dataclass
class DensityCheck:
    """Pairwise spreads of log-density differences, and per-variable culprits."""

    pairs: pd.DataFrame
    terms: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_points: int = 0

    @property
    def ok(self) -> bool:
        """Whether every pair differs by a constant."""
        return bool(self.pairs["constant"].all()) if len(self.pairs) else True

    def culprits(self, pair: str) -> list[str]:
        """Variables whose terms differ non-constantly for ``pair``."""
        if self.terms.empty:
            return []
        rows = self.terms[(self.terms["pair"] == pair) & ~self.terms["constant"]]
        return list(rows["variable"])


def check_density(
    logps: Mapping[str, np.ndarray],
    terms: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> DensityCheck:
    """Compare log densities (``source -> (n,)``) and optional per-variable terms."""
    rows, term_rows = [], []
    terms = terms or {}
    n = 0
    for a, b in itertools.combinations(logps, 2):
        spread, constant = constant_difference(logps[a], logps[b])
        n = len(logps[a])
        rows.append({"pair": f"{a} vs {b}", "a": a, "b": b, "spread": spread,
                     "constant": constant})
        if a in terms and b in terms:
            for var in sorted(set(terms[a]) & set(terms[b])):
                s, c = constant_difference(terms[a][var], terms[b][var])
                term_rows.append({"pair": f"{a} vs {b}", "variable": var, "spread": s,
                                  "constant": c})
    return DensityCheck(
        pd.DataFrame(rows, columns=["pair", "a", "b", "spread", "constant"]),
        pd.DataFrame(term_rows, columns=["pair", "variable", "spread", "constant"]),
        n,
    )
