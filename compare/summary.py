"""Per-element posterior summaries with the Monte Carlo standard error of every statistic."""

from __future__ import annotations

import contextlib
import math
import warnings

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.base import array_stats

__all__ = ["QUANTILES", "QUANTILE_WINDOW", "STATISTICS", "element_labels", "mcse_quantile",
           "pareto_khat", "summarize"]

#: Quantiles summarized and tested.
QUANTILES = (0.05, 0.5, 0.95)
#: Statistics tested between backends, each with its MCSE column ``mcse_<name>``.
STATISTICS = ("mean", "sd", "q05", "q50", "q95")


def _qname(q: float) -> str:
    return f"q{round(q * 100):02d}"


def pareto_khat(draws: np.ndarray) -> float:
    """Pareto k-hat of the heavier tail of ``draws`` (Vehtari et al. 2024, both tails), by
    arviz-stats. Above ~0.7 the mean and sd (and their MCSEs) are not reliable; NaN when there
    are too few finite draws, or they are constant, or a tail is all ties (a count)."""
    x = np.asarray(draws, dtype=float).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size < 20 or np.ptp(x) == 0:
        return math.nan
    with _quiet():
        try:
            return float(array_stats.pareto_khat(x[np.newaxis, :]))
        except ValueError:  # a tail of tied values (counts): no Pareto fit, nothing to judge
            return math.nan


def element_labels(da: xr.DataArray) -> list[str]:
    """Labels ``name[coord, ...]`` of every element of a posterior variable."""
    dims = [d for d in da.dims if d not in ("chain", "draw")]
    if not dims:
        return [str(da.name)]
    coords = [da.coords[d].values if d in da.coords else range(da.sizes[d]) for d in dims]
    grid = np.stack(np.meshgrid(*coords, indexing="ij"), axis=-1).reshape(-1, len(dims))
    return [f"{da.name}[{', '.join(str(v) for v in row)}]" for row in grid]


def _columns(post: xr.Dataset) -> dict[str, xr.Dataset]:
    columns: dict[str, xr.Dataset] = {
        "mean": post.mean(("chain", "draw")),
        "sd": post.std(("chain", "draw"), ddof=1),
        "mcse_mean": azs.mcse(post, method="mean"),
        "mcse_sd": azs.mcse(post, method="sd"),
        "ess_bulk": azs.ess(post, method="bulk"),
        "ess_tail": azs.ess(post, method="tail"),
        "r_hat": azs.rhat(post),
    }
    for q in QUANTILES:
        columns[_qname(q)] = post.quantile(q, dim=("chain", "draw")).drop_vars("quantile")
        columns[f"mcse_{_qname(q)}"] = mcse_quantile(post, q)
    return columns


#: Ranks of the sorted draws over which :func:`mcse_quantile` measures the slope of the
#: quantile function (at most p / 2 on either side of p). Chosen by bench/mcse_study.py.
QUANTILE_WINDOW = 200


def mcse_quantile(post: xr.Dataset, prob: float, window: int = QUANTILE_WINDOW) -> xr.Dataset:
    """Monte Carlo standard error of the ``prob`` quantile of every variable of ``post``.

    ``sqrt(p (1 - p) / ESS) * dQ/dp``: the first factor is the MCSE of the indicator
    ``x <= q`` (its ESS from arviz-stats), the second the slope of the quantile function at
    ``p``, measured between the ``p - h`` and ``p + h`` quantiles of the draws, ``h`` spanning
    ``window`` ranks (at most ``p / 2``). arviz-stats measures the slope over the +- 1 standard
    error window of ``p`` (about 30 ranks for the 5% quantile of 4000 draws): an estimate with
    ~20% relative error, which puts z's far tail, where Holm's thresholds lie, well above the
    normal's (bench/mcse_study.py, README "Calibration").
    """
    n = post.sizes["chain"] * post.sizes["draw"]
    h = min(window / (2 * n), prob / 2, (1 - prob) / 2)
    dims = ("chain", "draw")
    ess = azs.ess(post, method="quantile", prob=prob)
    hi, lo = (post.quantile(prob + d, dim=dims).drop_vars("quantile") for d in (h, -h))
    return np.sqrt(prob * (1 - prob) / ess) * (hi - lo) / (2 * h)


@contextlib.contextmanager
def _quiet():
    """Constant or non-finite elements (a fixed data column, a 1-chain R-hat) make arviz-stats
    and NumPy warn; their NaN results are what the tables report."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def summarize(
    posterior: xr.Dataset | xr.DataTree, var_names: list[str] | None = None
) -> pd.DataFrame:
    """One row per scalar element: mean, sd, quantiles, the MCSE of each, ESS, R-hat, k-hat.

    Columns: ``variable, element, mean, sd, q05, q50, q95, mcse_mean, mcse_sd, mcse_q05,
    mcse_q50, mcse_q95, ess_bulk, ess_tail, r_hat, khat``; the index is the element label.
    """
    if isinstance(posterior, xr.DataTree):
        posterior = posterior.to_dataset()
    names = list(var_names or posterior.data_vars)
    post = posterior[names]
    with _quiet():
        columns = _columns(post)
    rows = []
    for name in names:
        da = post[name]
        labels = element_labels(da)
        stacked = da.values.reshape(da.sizes["chain"] * da.sizes["draw"], -1)
        khat = [pareto_khat(stacked[:, j]) for j in range(stacked.shape[1])]
        frame = pd.DataFrame(
            {col: np.asarray(ds[name].values, dtype=float).reshape(-1)
             for col, ds in columns.items()},
            index=labels,
        )
        frame.insert(0, "element", labels)
        frame.insert(0, "variable", name)
        frame["khat"] = khat
        rows.append(frame)
    order = ["variable", "element", *STATISTICS, *(f"mcse_{s}" for s in STATISTICS),
             "ess_bulk", "ess_tail", "r_hat", "khat"]
    return pd.concat(rows)[order]
