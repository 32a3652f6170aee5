"""Calibration of the verdict across models and pairs of backends: every z recorded.

Two steps, so that the statistics can be studied (and changed) without refitting:

``collect``
    Fit every chosen model on every chosen backend with its default settings (the spec's
    ``[fit]``, else :class:`crossppl.config.FitConfig`'s), for each seed, one fit at a time, each
    in its own process (as ``compare`` runs them), and keep the draws:
    ``STORE/<model>/<backend>-s<seed>.nc``. Resumable: a fit already stored is not redone; a
    failed fit is recorded in ``STORE/failures.json``.
``analyze``
    For each model and seed, the fits that pass crossppl's diagnostics gate, and for every pair
    of them, crossppl's agreement tests of that pair alone (what ``crossppl compare --backends
    a,b`` decides from these draws). Records every z with its model, pair, element, statistic
    and both sides' ESS / number of draws, and tabulates: false mismatches per model and per
    pair (with exact 95% intervals), the tail of |z| per statistic and per ESS/draws band, and
    the verdict of each all-backend run.

    .venv/bin/python bench/zoo_calibration.py collect --seeds 1-12
    .venv/bin/python bench/zoo_calibration.py analyze --json out.json --markdown

The fits are the expensive part (about 30 s per model and seed for three backends on two
cores); ``analyze`` takes a minute.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from calibration import _table, clopper_pearson  # bench/calibration.py: the same tables

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: The bundled models that reach "match" with their default settings (README, "The zoo"):
#: dyes and eight_schools_centered are inconclusive by design (funnels on every backend).
MODELS = ("rats", "pump", "seeds", "surgical", "blocker", "eight_schools")
BACKENDS = ("stan", "pymc", "numpyro")
STORE = HERE / "out" / "zoo_draws"
#: |z| thresholds tabulated, with their two-sided normal tail probability.
THRESHOLDS = (1.96, 2.576, 3.291, 3.891)


def say(message: str) -> None:
    """A progress line on standard error."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def seed_list(text: str) -> list[int]:
    """``"1-12"``, ``"1,4,9"`` or a mix, as a list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    return seeds


def names(text: str | None, default: tuple[str, ...]) -> list[str]:
    """A comma-separated selection, or the default."""
    return [t.strip() for t in text.split(",") if t.strip()] if text else list(default)


def fit_path(store: Path, model: str, backend: str, seed: int) -> Path:
    """Where the draws of one fit are kept."""
    return store / model / f"{backend}-s{seed}.nc"


# --------------------------------------------------------------------------------------------
# collect
# --------------------------------------------------------------------------------------------


def collect(args) -> int:
    """Fit and store what is not stored yet."""
    from crossppl.api import fit, save_netcdf
    from crossppl.runner import FitJob, run_fits

    store: Path = args.store
    failures_file = store / "failures.json"
    failures = json.loads(failures_file.read_text()) if failures_file.exists() else {}
    todo = [(m, b, s) for s in seed_list(args.seeds) for m in names(args.models, MODELS)
            for b in names(args.backends, BACKENDS)
            if not fit_path(store, m, b, s).exists() and f"{m}/{b}-s{s}" not in failures]
    say(f"{len(todo)} fits to run")
    t0 = time.perf_counter()
    for i, (model, backend, seed) in enumerate(todo):
        out = run_fits([FitJob(backend, fit, {"spec": model, "backend": backend, "seed": seed,
                                              "progress": False})],
                       parallel=1, timeout=args.timeout)[backend]
        key = f"{model}/{backend}-s{seed}"
        if out.ok:
            path = fit_path(store, model, backend, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            out.idata["posterior"].attrs["fit_seconds"] = round(out.seconds, 2)
            save_netcdf(out.idata, path)
            state = f"{out.seconds:.0f} s"
        else:
            failures[key] = out.error[-500:]
            store.mkdir(parents=True, exist_ok=True)
            failures_file.write_text(json.dumps(failures, indent=1))
            state = f"FAILED: {out.error.splitlines()[-1][:120] if out.error else '?'}"
        eta = (time.perf_counter() - t0) / (i + 1) * (len(todo) - i - 1) / 60
        say(f"{i + 1}/{len(todo)} {key}: {state} (eta {eta:.0f} min)")
    return 0


# --------------------------------------------------------------------------------------------
# analyze
# --------------------------------------------------------------------------------------------


def load_sources(store: Path, model: str, seed: int, backends: list[str]):
    """The :class:`~crossppl.compare.verdict.Source` of each stored fit of one run."""
    from crossppl.compare.diagnostics import diagnose
    from crossppl.compare.summary import summarize
    from crossppl.compare.verdict import Source

    from crossppl.datatree import load_netcdf

    sources = {}
    for backend in backends:
        path = fit_path(store, model, backend, seed)
        if not path.exists():
            continue
        tree = load_netcdf(path)
        summary = summarize(tree["posterior"].to_dataset())
        sources[backend] = Source(backend, "generated", summary=summary, idata=tree,
                                  diagnostics=diagnose(tree, summary))
    return sources


def analyze(args) -> int:
    """Every pair's tests from the stored draws; tables and (optionally) a JSON report."""
    from crossppl.compare.agreement import pairwise_tests

    store: Path = args.store
    models = names(args.models, MODELS)
    backends = names(args.backends, BACKENDS)
    pair_rows, z_rows, runs = [], [], []
    for model in models:
        seeds = sorted({int(p.stem.split("-s")[1]) for p in (store / model).glob("*.nc")})
        for seed in seeds:
            sources = load_sources(store, model, seed, backends)
            healthy = {n: s.summary for n, s in sources.items() if s.ok}
            draws = {n: s.idata["posterior"].sizes["chain"] * s.idata["posterior"].sizes["draw"]
                     for n, s in sources.items()}
            for a, b in itertools.combinations([n for n in backends if n in sources], 2):
                if a not in healthy or b not in healthy:
                    bad = [s.problem for s in (sources[a], sources[b]) if not s.ok]
                    pair_rows.append({"model": model, "seed": seed, "pair": f"{a} vs {b}",
                                      "verdict": "inconclusive", "why": "; ".join(bad)})
                    continue
                tests = pairwise_tests({a: healthy[a], b: healthy[b]}, alpha=args.alpha)
                tested = tests[tests["note"] == ""]
                rejected = tested[tested["reject"]]
                pair_rows.append({
                    "model": model, "seed": seed, "pair": f"{a} vs {b}",
                    "verdict": "mismatch" if len(rejected) else "match",
                    "n_tests": len(tested),
                    "rejected": [[r.parameter, r.statistic, round(float(r.z), 2)]
                                 for r in rejected.itertuples()],
                })
                for r in tested.itertuples():
                    sa, sb = healthy[a].loc[r.parameter], healthy[b].loc[r.parameter]
                    ess = "ess_tail" if r.statistic in ("q05", "q95") else "ess_bulk"
                    z_rows.append({
                        "model": model, "seed": seed, "pair": r.pair, "element": r.parameter,
                        "statistic": r.statistic, "z": float(r.z),
                        "z_crit": float(r.z_crit),
                        "ess_ratio_a": float(sa[ess]) / draws[a],
                        "ess_ratio_b": float(sb[ess]) / draws[b],
                    })
            if len(healthy) == len(backends):
                tests = pairwise_tests(healthy, alpha=args.alpha)
                runs.append({"model": model, "seed": seed,
                             "verdict": "mismatch" if tests["reject"].any() else "match"})
        say(f"{model}: {len(seeds)} seeds")
    report = tables(pair_rows, z_rows, runs, args.alpha)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"pairs": pair_rows, "runs": runs, "tables": report,
                                         "z": z_rows if args.keep_z else None}, indent=1))
    print(render(report, args.markdown))
    return 0


def rate_row(label: str, verdicts: list[str]) -> dict:
    """False mismatches among conclusive compares, with the exact 95% interval."""
    n = sum(v != "inconclusive" for v in verdicts)
    k = sum(v == "mismatch" for v in verdicts)
    lo, hi = clopper_pearson(k, n)
    return {"label": label, "compares": n, "mismatch": k, "inconclusive": len(verdicts) - n,
            "rate": k / n if n else math.nan, "ci95": [lo, hi]}


def tail_row(label: str, z: np.ndarray) -> dict:
    """Share of |z| beyond each threshold, mean z^2, count."""
    a = np.abs(z)
    return {"label": label, "n": int(a.size), "mean_z2": float(np.mean(z ** 2)) if a.size else
            math.nan, **{f">{t}": float(np.mean(a > t)) if a.size else math.nan
                         for t in THRESHOLDS}}


def tables(pair_rows: list[dict], z_rows: list[dict], runs: list[dict], alpha: float) -> dict:
    """The report's tables as data."""
    from scipy import stats

    by_model = collections.defaultdict(list)
    by_pair = collections.defaultdict(list)
    for r in pair_rows:
        by_model[r["model"]].append(r["verdict"])
        by_pair[r["pair"]].append(r["verdict"])
    every = [r["verdict"] for r in pair_rows]
    z = np.array([r["z"] for r in z_rows])
    stat = np.array([r["statistic"] for r in z_rows])
    ratio = np.array([max(r["ess_ratio_a"], r["ess_ratio_b"]) for r in z_rows])
    bands = [("ESS/N < 0.5", ratio < 0.5), ("0.5 <= ESS/N < 1", (ratio >= 0.5) & (ratio < 1)),
             ("ESS/N >= 1 (antithetic)", ratio >= 1)]
    tails = [tail_row(s, z[stat == s]) for s in dict.fromkeys(stat)]
    tails += [tail_row(f"{s}, {b}", z[(stat == s) & m]) for s in dict.fromkeys(stat)
              for b, m in bands if np.any((stat == s) & m)]
    models = collections.defaultdict(list)
    for r in z_rows:
        models[(r["model"], r["statistic"])].append(r["z"])
    return {
        "alpha": alpha,
        "normal_tails": {f">{t}": float(2 * stats.norm.sf(t)) for t in THRESHOLDS},
        "all": rate_row("all models, all pairs", every),
        "per_model": [rate_row(m, v) for m, v in by_model.items()],
        "per_pair": [rate_row(p, v) for p, v in by_pair.items()],
        "all_backend_runs": rate_row("runs with every backend: any pair mismatched",
                                     [r["verdict"] for r in runs]),
        "z_tails": tails,
        "z_tails_per_model": [tail_row(f"{m} {s}", np.array(v)) for (m, s), v in models.items()],
        "rejected": [[r["model"], r["seed"], r["pair"], *x] for r in pair_rows
                     for x in r.get("rejected", [])],
        "closest": [[r["model"], r["seed"], r["pair"], r["element"], r["statistic"],
                     round(r["z"], 2), round(r["z_crit"], 2)]
                    for r in sorted(z_rows, key=lambda r: -abs(r["z"]) / r["z_crit"])[:12]],
    }


def _rates(rows: list[dict], markdown: bool) -> str:
    return _table(["", "compares", "mismatch", "inconclusive", "false-mismatch rate", "95% CI"],
                  [[r["label"], str(r["compares"]), str(r["mismatch"]), str(r["inconclusive"]),
                    f"{r['rate']:.3f}", f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"]
                   for r in rows], markdown)


def _tails(rows: list[dict], normal: dict, markdown: bool) -> str:
    head = ["", "tests", "mean z^2", *(f"abs z {k} (N: {v:.4f})" for k, v in normal.items())]
    return _table(head, [[r["label"], str(r["n"]), f"{r['mean_z2']:.2f}",
                          *(f"{r[k]:.4f}" for k in normal)] for r in rows], markdown)


def render(report: dict, markdown: bool) -> str:
    """The tables as text (or markdown)."""
    out = [f"False mismatches of correct programs, each pair compared alone "
           f"(alpha {report['alpha']})", _rates([report["all"]], markdown), "",
           "Per model", _rates(report["per_model"], markdown), "",
           "Per pair", _rates(report["per_pair"], markdown), "",
           "Runs with every backend (the verdict of `crossppl compare` on all of them)",
           _rates([report["all_backend_runs"]], markdown), "",
           "Tail of |z| per statistic (and by the larger ESS / draws of the two sides)",
           _tails(report["z_tails"], report["normal_tails"], markdown)]
    out += ["", "Closest calls: the largest |z| relative to the |z| its Holm step needed",
            _table(["model", "seed", "pair", "element", "statistic", "z", "needed"],
                   [[str(x) for x in r] for r in report["closest"]], markdown)]
    if report["rejected"]:
        out += ["", "Rejected tests",
                _table(["model", "seed", "pair", "element", "statistic", "z"],
                       [[str(x) for x in r] for r in report["rejected"]], markdown)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("collect", "analyze"):
        p = sub.add_parser(name)
        p.add_argument("--models", help=f"comma-separated (default: {','.join(MODELS)})")
        p.add_argument("--backends", help=f"comma-separated (default: {','.join(BACKENDS)})")
        p.add_argument("--store", type=Path, default=STORE, help=f"draws folder ({STORE})")
    collect_p, analyze_p = sub.choices["collect"], sub.choices["analyze"]
    collect_p.add_argument("--seeds", default="1-12", help="e.g. 1-12 or 1,5,9 (default 1-12)")
    collect_p.add_argument("--timeout", type=float, default=1800, help="seconds per fit")
    analyze_p.add_argument("--alpha", type=float, default=0.05)
    analyze_p.add_argument("--json", type=Path, help="write the full report here")
    analyze_p.add_argument("--keep-z", action="store_true", help="every z in the JSON report")
    analyze_p.add_argument("--markdown", action="store_true", help="tables as markdown")
    args = ap.parse_args(argv)
    return collect(args) if args.command == "collect" else analyze(args)


if __name__ == "__main__":
    sys.exit(main())
