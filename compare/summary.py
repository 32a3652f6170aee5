"""Per-element posterior summaries with the Monte Carlo standard error of every statistic."""

from __future__ import annotations

import math
import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["QUANTILES", "STATISTICS", "element_labels", "pareto_khat", "summarize"]

#: Quantiles summarized and tested.
QUANTILES = (0.05, 0.5, 0.95)
#: Statistics tested between backends, each with its MCSE column ``mcse_<name>``.
STATISTICS = ("mean", "sd", "q05", "q50", "q95")


def _qname(q: float) -> str:
    return f"q{round(q * 100):02d}"


def pareto_khat(draws: np.ndarray) -> float:
    """Pareto k-hat of the heavier tail of ``draws`` (Vehtari et al. 2024, both tails).

    Fits a generalized Pareto distribution (Zhang & Stephens 2009) to the largest
    ``ceil(3 * sqrt(n))`` draws of each tail. k-hat above ~0.7 means the mean and sd (and their
    MCSEs) are not reliable: fewer than 1.4 finite moments.
    """
    x = np.asarray(draws, dtype=float).reshape(-1)
    x = x[np.isfinite(x)]
    n = x.size
    if n < 20 or np.ptp(x) == 0:
        return math.nan
    m = math.ceil(3 * math.sqrt(n)) if n > 225 else n // 5
    khats = []
    for tail in (x, -x):
        tail_sorted = np.sort(tail)
        cutoff = tail_sorted[-m - 1]
        exceed = tail_sorted[-m:] - cutoff
        if np.all(exceed <= 0):
            continue
        khats.append(_gpd_k(exceed))
    return max(khats) if khats else math.nan


def _gpd_k(x: np.ndarray) -> float:
    """Shape k of a generalized Pareto fit to exceedances ``x`` (Zhang & Stephens, with the
    weakly informative prior of Vehtari et al.)."""
    x = np.sort(x)
    n = x.size
    prior = 3
    m = 30 + int(math.sqrt(n))
    b_ary = 1 - np.sqrt(m / (np.arange(1, m + 1) - 0.5))
    b_ary /= prior * x[int(n / 4 + 0.5) - 1]
    b_ary += 1 / x[-1]
    k_ary = np.log1p(-b_ary[:, None] * x).mean(axis=1)
    len_scale = n * (np.log(-(b_ary / k_ary)) - k_ary - 1)
    weights = 1 / np.exp(len_scale - len_scale[:, None]).sum(axis=1)
    real = weights >= 10 * np.finfo(float).eps
    b_post = np.sum(b_ary[real] * weights[real]) / np.sum(weights[real])
    k_post = np.log1p(-b_post * x).mean()
    return float((n * k_post + 10 * 0.5) / (n + 10))


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
        "mcse_mean": az.mcse(post, method="mean"),
        "mcse_sd": az.mcse(post, method="sd"),
        "ess_bulk": az.ess(post, method="bulk"),
        "ess_tail": az.ess(post, method="tail"),
        "r_hat": az.rhat(post),
    }
    for q in QUANTILES:
        columns[_qname(q)] = post.quantile(q, dim=("chain", "draw")).drop_vars("quantile")
        columns[f"mcse_{_qname(q)}"] = az.mcse(post, method="quantile", prob=q)
    return columns


def summarize(posterior: xr.Dataset, var_names: list[str] | None = None) -> pd.DataFrame:
    """One row per scalar element: mean, sd, quantiles, the MCSE of each, ESS, R-hat, k-hat.

    Columns: ``variable, element, mean, sd, q05, q50, q95, mcse_mean, mcse_sd, mcse_q05,
    mcse_q50, mcse_q95, ess_bulk, ess_tail, r_hat, khat``; the index is the element label.
    """
    names = list(var_names or posterior.data_vars)
    post = posterior[names]
    with warnings.catch_warnings():
        # ArviZ 0.23's numba path of mcse(method="sd") warns on NumPy >= 1.25; not actionable.
        warnings.filterwarnings("ignore", "Conversion of an array with ndim", DeprecationWarning)
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
