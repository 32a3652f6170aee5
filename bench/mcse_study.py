"""Which Monte Carlo standard errors make the agreement tests' z calibrated? A study on stored
draws of correct programs (``bench/zoo_calibration.py collect``), no refitting.

For every model, seed and pair of backends, every element and statistic, z = (a - b) /
sqrt(mcse_a^2 + mcse_b^2) under several MCSE estimators for the quantiles (and rules for which
tests run); then, per estimator: the share of |z| beyond normal thresholds per statistic (N(0,1):
5%, 1%, 0.1%, 0.01%) and the false-mismatch rate of each pair compared alone (Holm at alpha
within the pair, the reference distribution of z as given).

    .venv/bin/python bench/mcse_study.py                 # every stored model
    .venv/bin/python bench/mcse_study.py --models rats,pump --window 100,200,400
"""

from __future__ import annotations

import argparse
import collections
import itertools
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo_calibration import BACKENDS, MODELS, STORE, clopper_pearson, names

QUANTILES = {"q05": 0.05, "q50": 0.5, "q95": 0.95}
THRESHOLDS = (1.96, 2.576, 3.291, 3.891)


def elements(path: Path) -> tuple[np.ndarray, list[str]]:
    """Draws of every scalar element as (element, chain, draw), and their labels."""
    from crossppl.compare.summary import element_labels

    from crossppl.datatree import load_netcdf

    post = load_netcdf(path)["posterior"].to_dataset()
    arrays, labels = [], []
    for name in post.data_vars:
        da = post[name].transpose("chain", "draw", ...)
        x = np.asarray(da.values, dtype=float).reshape(da.sizes["chain"], da.sizes["draw"], -1)
        arrays.append(np.moveaxis(x, -1, 0))
        labels += element_labels(da)
    return np.concatenate(arrays), labels


def wide_quantile_mcse(x: np.ndarray, p: float, ess: np.ndarray, window: int) -> np.ndarray:
    """sqrt(p (1 - p) / ESS) / f(q): the indicator's ESS (arviz-stats), and 1 / f(q) from the
    quantile function's slope over ``window`` ranks of the sorted draws (p +- h, h <= p / 2)."""
    flat = np.sort(x.reshape(x.shape[0], -1), axis=1)
    s = flat.shape[1]
    h = min(window / (2 * s), p / 2, (1 - p) / 2)
    lo = np.quantile(flat, p - h, axis=1)
    hi = np.quantile(flat, p + h, axis=1)
    return np.sqrt(p * (1 - p) / ess) * (hi - lo) / (2 * h)


def statistics(x: np.ndarray, windows: list[int]) -> dict:
    """Values and MCSEs of every statistic of every element, under each estimator."""
    from arviz_stats.base import array_stats as st
    from crossppl.compare.summary import pareto_khat

    flat = x.reshape(x.shape[0], -1)
    n = flat.shape[1]
    out = {"mean": flat.mean(1), "sd": flat.std(1, ddof=1), "n": n,
           "mcse_mean": st.mcse(x, method="mean"), "mcse_sd": st.mcse(x, method="sd"),
           "ess_bulk": st.ess(x, method="bulk"), "ess_tail": st.ess(x, method="tail", prob=0.05),
           "khat": np.array([pareto_khat(row) for row in flat])}
    for name, p in QUANTILES.items():
        out[name] = np.quantile(flat, p, axis=1)
        out[f"mcse_{name}:arviz"] = st.mcse(x, method="quantile", prob=p)
        ess = st.ess(x, method="quantile", prob=p)
        out[f"ess_{name}"] = ess
        for w in windows:
            out[f"mcse_{name}:w{w}"] = wide_quantile_mcse(x, p, ess, w)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", help=f"comma-separated (default: {','.join(MODELS)})")
    ap.add_argument("--backends", help=f"comma-separated (default: {','.join(BACKENDS)})")
    ap.add_argument("--store", type=Path, default=STORE)
    ap.add_argument("--window", default="200", help="ranks of the wide quantile window(s)")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--df", default="100,inf", help="t reference df(s) of z (inf: normal)")
    ap.add_argument("--khat-sd", type=float, default=0.7, help="sd tested below this k-hat")
    args = ap.parse_args(argv)
    windows = [int(w) for w in args.window.split(",")]
    dfs = [float(d) for d in args.df.split(",")]
    variants = ["arviz", *(f"w{w}" for w in windows)]
    backends = names(args.backends, BACKENDS)
    z = collections.defaultdict(list)  # (variant, statistic) -> z
    zband = collections.defaultdict(list)  # (variant, statistic, band) -> z
    fa = collections.defaultdict(list)  # (variant, df, model, pair) -> rejected?
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for model in names(args.models, MODELS):
            seeds = sorted({int(p.stem.split("-s")[1]) for p in (args.store / model).glob("*.nc")})
            for seed in seeds:
                fits = {}
                for b in backends:
                    path = args.store / model / f"{b}-s{seed}.nc"
                    if path.exists():
                        x, labels = elements(path)
                        fits[b] = (statistics(x, windows), labels)
                for a, b in itertools.combinations(fits, 2):
                    (sa, la), (sb, lb) = fits[a], fits[b]
                    assert la == lb
                    heavy = np.fmax(sa["khat"], sb["khat"])
                    for v in variants:
                        zs, kinds = [], []
                        for stat in ("mean", "sd", *QUANTILES):
                            col = f"mcse_{stat}" if stat in ("mean", "sd") else f"mcse_{stat}:{v}"
                            se = np.hypot(sa[col], sb[col])
                            zz = (sa[stat] - sb[stat]) / se
                            ok = np.isfinite(zz) & (se > 0)
                            if stat == "mean":
                                ok &= ~(heavy > 0.7)
                            if stat == "sd":
                                ok &= ~(heavy > args.khat_sd)
                            zz = zz[ok]
                            zs.append(zz)
                            kinds += [stat] * zz.size
                            z[(v, stat)] += zz.tolist()
                            ess = "ess_bulk" if stat in ("mean", "sd", "q50") else "ess_tail"
                            ratio = np.fmax(sa[ess] / sa["n"], sb[ess] / sb["n"])[ok]
                            for band, m in (("ESS/N<1", ratio < 1), ("ESS/N>=1", ratio >= 1)):
                                zband[(v, stat, band)] += zz[m].tolist()
                        allz = np.concatenate(zs)
                        for df in dfs:
                            p = 2 * (stats.norm.sf(np.abs(allz)) if np.isinf(df)
                                     else stats.t.sf(np.abs(allz), df))
                            m = p.size
                            reject = np.any(np.sort(p) <= args.alpha / (m - np.arange(m)))
                            fa[(v, df, model, f"{a} vs {b}")].append(bool(reject))
            print(f"{model}: {len(seeds)} seeds", file=sys.stderr)
    normal = [2 * stats.norm.sf(t) for t in THRESHOLDS]
    print("Share of |z| beyond thresholds (normal: " +
          ", ".join(f">{t}: {q:.4f}" for t, q in zip(THRESHOLDS, normal, strict=True)) + ")")
    print(f"{'variant':8} {'stat':5} {'n':>7} {'mean z2':>8} " +
          " ".join(f"{'>' + str(t):>8}" for t in THRESHOLDS))
    for (v, stat), zs in sorted(z.items()):
        a = np.abs(np.asarray(zs))
        print(f"{v:8} {stat:5} {a.size:7d} {np.mean(a ** 2):8.3f} " +
              " ".join(f"{np.mean(a > t):8.4f}" for t in THRESHOLDS))
    print("\nBy ESS / draws (the larger of the two sides)")
    for (v, stat, band), zs in sorted(zband.items()):
        a = np.abs(np.asarray(zs))
        if a.size:
            print(f"{v:8} {stat:5} {band:9} {a.size:7d} {np.mean(a ** 2):8.3f} " +
                  " ".join(f"{np.mean(a > t):8.4f}" for t in THRESHOLDS))
    print(f"\nFalse mismatches, each pair alone (Holm at {args.alpha} within the pair)")
    totals = collections.defaultdict(list)
    for (v, df, model, pair), rej in sorted(fa.items()):
        totals[(v, df)] += rej
        totals[(v, df, "model", model)] += rej
        totals[(v, df, "pair", pair)] += rej
    for key, rej in sorted(totals.items(), key=lambda t: tuple(map(str, t[0]))):
        k, n = sum(rej), len(rej)
        lo, hi = clopper_pearson(k, n)
        label = " ".join(map(str, key))
        print(f"{label:40} {k:3d}/{n:<4d} {k / n:6.3f}  [{lo:.3f}, {hi:.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
