"""Tests of agreement between posteriors: every element, every statistic, every pair of sources,
each difference scaled by the Monte Carlo standard errors.

Each pair of sources is its own family: Holm's method over that pair's tests, at ``alpha``. A
pair's tests, rejections and thresholds are therefore the same whether the pair is compared
alone or in a run with other sources; the run's verdict is a mismatch when any pair's is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from .summary import STATISTICS

__all__ = ["KHAT_MAX", "holm", "holm_levels", "pairwise_tests", "pooled_rhat"]

#: Degrees of freedom of the Student-t reference of each z: the MCSE in its denominator is itself
#: an estimate (from 4 chains x 1000 draws its relative error is ~10%), so z is t-like, not
#: normal. Chosen by bench/calibration.py: with a normal reference the family-wise false-alarm
#: rate on correct Rats programs was 9/120 = 7.5% (alpha 0.05); with t(100), 4/120 = 3.3%, while
#: every wrong port stays detected (their |z| are 100 or more, or the density check fires).
MCSE_DF = 100

#: Above this Pareto k-hat the mean and sd (and their MCSEs) are not trusted for that element;
#: only its quantiles are tested (Vehtari et al. 2024: k > 0.7 means unreliable estimates).
KHAT_MAX = 0.7

TEST_COLUMNS = ["parameter", "variable", "statistic", "pair", "a", "b", "value_a", "value_b",
                "se", "z", "p", "z_crit", "reject", "note"]


def holm_levels(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """The level each p-value faces in Holm's step-down procedure: ``alpha / (m - rank)``,
    rank 0 for the smallest p."""
    p = np.asarray(pvalues, dtype=float)
    levels = np.empty(p.size)
    levels[np.argsort(p, kind="stable")] = alpha / (p.size - np.arange(p.size))
    return levels


def holm(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down rejections at family-wise error rate ``alpha``."""
    p = np.asarray(pvalues, dtype=float)
    reject = np.zeros(p.size, dtype=bool)
    order = np.argsort(p)
    m = p.size
    for rank, i in enumerate(order):
        if p[i] <= alpha / (m - rank):
            reject[i] = True
        else:
            break
    return reject


def pairwise_tests(
    summaries: Mapping[str, pd.DataFrame],
    *,
    alpha: float = 0.05,
    khat_max: float = KHAT_MAX,
    pairs: list[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """z-tests of every statistic of every shared element between pairs of sources.

    ``summaries`` map a source name (a backend, a hand-written program, a reference) to its
    :func:`~crossppl.compare.summary.summarize` table; a statistic whose value or MCSE is
    missing (NaN) in a source is not tested for it. ``z = (a - b) / sqrt(mcse_a^2 + mcse_b^2)``,
    ``p`` two-sided from a Student-t with :data:`MCSE_DF` degrees of freedom (the MCSEs are
    estimates). Each pair is one family: Holm over its tests at ``alpha``; ``z_crit`` is the
    |z| a test needed at its Holm step (the step-down stops at the first test below it).
    """
    rows = []
    for a, b in pairs or list(itertools.combinations(summaries, 2)):
        sa, sb = summaries[a], summaries[b]
        shared = [e for e in sa.index if e in sb.index]
        for element in shared:
            ra, rb = sa.loc[element], sb.loc[element]
            heavy = max(_get(ra, "khat"), _get(rb, "khat"))
            for stat in STATISTICS:
                va, vb = _get(ra, stat), _get(rb, stat)
                ea, eb = _get(ra, f"mcse_{stat}"), _get(rb, f"mcse_{stat}")
                if any(math.isnan(v) for v in (va, vb, ea, eb)):
                    continue
                note = ""
                if stat in ("mean", "sd") and heavy > khat_max:
                    note = f"not tested: Pareto k {heavy:.2f} > {khat_max} (heavy tail)"
                se = math.hypot(ea, eb)
                if se > 0:
                    z = (va - vb) / se
                else:
                    z = 0.0 if va == vb else math.copysign(math.inf, va - vb)
                rows.append({
                    "parameter": element, "variable": ra.get("variable", element),
                    "statistic": stat, "pair": f"{a} vs {b}", "a": a, "b": b,
                    "value_a": va, "value_b": vb, "se": se, "z": z,
                    "p": float(2 * stats.t.sf(abs(z), MCSE_DF)) if not note else math.nan,
                    "z_crit": math.nan, "note": note,
                })
    table = pd.DataFrame(rows, columns=TEST_COLUMNS)
    table["reject"] = False
    tested = table[table["note"] == ""]
    for _, family in tested.groupby("pair", sort=False):
        p = family["p"].to_numpy()
        table.loc[family.index, "reject"] = holm(p, alpha)
        table.loc[family.index, "z_crit"] = stats.t.isf(holm_levels(p, alpha) / 2, MCSE_DF)
    return table


def _get(row: pd.Series, column: str) -> float:
    value = row.get(column, math.nan)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def pooled_rhat(posteriors: Mapping[str, xr.Dataset], threshold: float = 1.01) -> pd.DataFrame:
    """Rank-normalized R-hat of every element over the chains of all sources pooled.

    A second view of agreement: if the sources sample the same distribution, their chains mix
    as one. Returns ``parameter, r_hat, flagged`` rows.
    """
    import arviz as az

    from .summary import element_labels

    names = set.intersection(*(set(p.data_vars) for p in posteriors.values()))
    draws = min(p.sizes["draw"] for p in posteriors.values())
    rows = []
    for name in sorted(names):
        pooled = xr.concat(
            [p[name].isel(draw=slice(0, draws)).drop_vars(["chain", "draw"], errors="ignore")
             for p in posteriors.values()],
            dim="chain",
        )
        r = az.rhat(pooled.to_dataset(name=name))[name].values.reshape(-1)
        for label, value in zip(element_labels(pooled.rename(name)), r, strict=True):
            rows.append({"parameter": label, "r_hat": float(value),
                         "flagged": bool(value > threshold)})
    return pd.DataFrame(rows, columns=["parameter", "r_hat", "flagged"])
