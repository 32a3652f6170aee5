"""Rats speed benchmark: crossppl's generated programs against hand-written ones.

For every backend and engine (Stan via PyStan, PyMC via nutpie and via pm.sample's own NUTS,
NumPyro) this fits the program crossppl generates from ``models/specs/rats.toml``
(``crossppl.fit("rats", backend, engine=...)``) and the expert's hand-written program in
``bench/hand/`` under the same NUTS settings (FitConfig's target_accept and max_treedepth,
the same chains/warmup/draws/seed), each in its own fresh subprocess, and prints build,
sampling and whole-process seconds and bulk-ESS per second of sampling for mu_alpha, mu_beta,
tau_beta and sigma, with the generated / hand-written ratio of ESS/s. Goal: ratio >= 0.95.

    .venv/bin/python bench/rats_speed.py                       # everything, 1 repeat
    .venv/bin/python bench/rats_speed.py --backends pymc:nutpie,numpyro --repeats 3
    .venv/bin/python bench/rats_speed.py --cold --json out.json --markdown

See bench/README.md for what exactly is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HAND = HERE / "hand"
DATA = ROOT / "data" / "rats.data.json"

#: (backend, engine) pairs in the order they run.
COMBOS: tuple[tuple[str, str], ...] = (
    ("stan", "pystan"),
    ("pymc", "nutpie"),
    ("pymc", "pymc"),
    ("numpyro", "numpyro"),
)
#: Parameters whose bulk-ESS per second is reported.
PARAMS: tuple[str, ...] = ("mu_alpha", "mu_beta", "tau_beta", "sigma")
#: Every name both programs must produce.
ALL_NAMES: tuple[str, ...] = (
    "mu_alpha",
    "tau_alpha",
    "mu_beta",
    "tau_beta",
    "tau",
    "alpha",
    "beta",
    "sigma",
)
GOAL = 0.95


# --------------------------------------------------------------------------------------------
# Worker: one fit in this (fresh) process; writes a JSON result file.
# --------------------------------------------------------------------------------------------


def _rats_data():
    import numpy as np

    raw = json.loads(DATA.read_text())
    return np.asarray(raw["x"], dtype=float), np.asarray(raw["y"], dtype=float)


def _fit_generated(job: dict) -> dict:
    import crossppl

    idata = crossppl.fit(
        "rats",
        job["backend"],
        engine=job["engine"],
        chains=job["chains"],
        warmup=job["warmup"],
        draws=job["draws"],
        seed=job["seed"],
        target_accept=job["target_accept"],
        max_treedepth=job["max_treedepth"],
        progress=False,
    )
    return {
        "idata": idata,
        "build_seconds": float(idata.attrs["build_seconds"]),
        "sampling_seconds": float(idata.attrs["sampling_seconds"]),
    }


def _fit_hand_stan(job: dict) -> dict:
    import stan
    from arviz_base import from_pystan

    x, y = _rats_data()
    data = {"N_rat": y.shape[0], "N_week": y.shape[1], "x": x, "y": y}
    program = (HAND / "rats.stan").read_text()
    t0 = time.perf_counter()
    posterior = stan.build(program, data=data, random_seed=job["seed"])
    t1 = time.perf_counter()
    fit = posterior.sample(
        num_chains=job["chains"],
        num_warmup=job["warmup"],
        num_samples=job["draws"],
        delta=job["target_accept"],
        max_depth=job["max_treedepth"],
    )
    t2 = time.perf_counter()
    idata = from_pystan(posterior=fit)
    return {"idata": idata, "build_seconds": t1 - t0, "sampling_seconds": t2 - t1}


def _fit_hand_pymc(job: dict) -> dict:
    sys.path.insert(0, str(HAND))
    import rats_pymc

    return rats_pymc.fit(
        job["engine"],
        chains=job["chains"],
        warmup=job["warmup"],
        draws=job["draws"],
        seed=job["seed"],
        target_accept=job["target_accept"],
        max_treedepth=job["max_treedepth"],
    )


def _fit_hand_numpyro(job: dict) -> dict:
    from arviz_base import from_dict

    sys.path.insert(0, str(HAND))
    import rats_numpyro

    out = rats_numpyro.fit(
        chains=job["chains"],
        warmup=job["warmup"],
        draws=job["draws"],
        seed=job["seed"],
        target_accept=job["target_accept"],
        max_treedepth=job["max_treedepth"],
    )
    stats = dict(out["sample_stats"])
    if "num_steps" in stats:
        stats["n_steps"] = stats.pop("num_steps")
    out["idata"] = from_dict({"posterior": out["samples"], "sample_stats": stats})
    return out


_STEP_STATS = ("n_steps", "n_leapfrog", "n_leapfrog__", "num_steps")


def _summarize(idata) -> dict:
    """Bulk-ESS, means and MCSE of PARAMS, gradient evaluations and divergences."""
    import arviz_stats as azs
    import numpy as np

    post = idata["posterior"].to_dataset()
    missing = [n for n in ALL_NAMES if n not in post]
    ess = azs.ess(post, var_names=list(PARAMS), method="bulk")
    mcse = azs.mcse(post, var_names=list(PARAMS), method="mean")
    out = {
        "ess_bulk": {p: float(ess[p]) for p in PARAMS},
        "mean": {p: float(post[p].mean()) for p in PARAMS},
        "mcse_mean": {p: float(mcse[p]) for p in PARAMS},
        "missing_names": missing,
        "draws_shape": list(post["mu_alpha"].shape),
    }
    stats = getattr(idata, "sample_stats", None)
    if stats is not None:
        for name in _STEP_STATS:
            if name in stats:
                out["grad_evals"] = int(np.asarray(stats[name]).sum())
                break
        for name in ("diverging", "divergent__"):
            if name in stats:
                out["divergences"] = int(np.asarray(stats[name]).astype(bool).sum())
                break
    return out


def worker(job: dict, result_path: Path) -> None:
    """Run one fit described by ``job`` and write its result to ``result_path``."""
    if job["program"] == "generated":
        fitted = _fit_generated(job)
    elif job["backend"] == "stan":
        fitted = _fit_hand_stan(job)
    elif job["backend"] == "pymc":
        fitted = _fit_hand_pymc(job)
    else:
        fitted = _fit_hand_numpyro(job)
    t_fit_done, cpu_fit_done = time.perf_counter(), time.process_time()
    result = {
        "build_seconds": fitted["build_seconds"],
        "sampling_seconds": fitted["sampling_seconds"],
        **_summarize(fitted["idata"]),
    }
    # Time spent here after the fit (ESS, writing) is the benchmark's, not the program's.
    result["post_seconds"] = time.perf_counter() - t_fit_done
    result["post_cpu_seconds"] = time.process_time() - cpu_fit_done
    result_path.write_text(json.dumps(result))


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _jax_cache(env: dict[str, str], folder: Path) -> dict[str, str]:
    """Give every JAX program the persistent compilation cache crossppl's NumPyro backend uses.

    The backend points JAX's cache at ``cache_dir("jax")`` with thresholds 0.2 s / 0 bytes; the
    hand-written program gets the same folder and thresholds, so neither side's warm runs skip
    compilation that the other's repeat. (With the variables set, the backend keeps them.)
    """
    env = dict(env)
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(folder))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    return env


def _warm_env() -> dict[str, str]:
    """This environment, with JAX's persistent cache shared as :func:`_jax_cache` says."""
    from crossppl.config import cache_dir

    return _jax_cache(dict(os.environ), cache_dir("jax"))


def _cold_env(root: Path) -> dict[str, str]:
    """Environment whose compile caches (httpstan, crossppl, PyTensor, Numba, JAX) are empty."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(root / "xdg")
    env["CROSSPPL_CACHE_DIR"] = str(root / "crossppl")
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f]
    flags = [f for f in flags if not f.startswith(("base_compiledir", "compiledir"))]
    env["PYTENSOR_FLAGS"] = ",".join([*flags, f"base_compiledir={root / 'pytensor'}"])
    env["NUMBA_CACHE_DIR"] = str(root / "numba")
    return _jax_cache(env, root / "jax")


def run_job(job: dict, *, env: dict[str, str] | None = None, timeout: float = 3600) -> dict:
    """Run ``job`` in a fresh subprocess; returns its result plus ``whole_seconds`` (wall) and
    ``cpu_seconds`` (user + system CPU of the process tree, as far as the OS accounts reaped
    children), both less the worker's own post-fit bookkeeping."""
    with tempfile.TemporaryDirectory(prefix="rats_speed_") as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job),
               "--result", str(result_path)]
        load = os.getloadavg()[0]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        whole = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        if proc.returncode != 0 or not result_path.exists():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            return {"error": f"exit {proc.returncode}: {tail}", "whole_seconds": whole}
        result = json.loads(result_path.read_text())
    result["whole_seconds"] = whole - result["post_seconds"]
    result["cpu_seconds"] = cpu - result["post_cpu_seconds"]
    result["loadavg"] = [load, os.getloadavg()[0]]
    return result


def _ess_per_s(result: dict) -> dict[str, float]:
    return {p: result["ess_bulk"][p] / result["sampling_seconds"] for p in PARAMS}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def aggregate(runs: list[dict]) -> dict:
    """Medians over repeats of the timings and of ESS/s (per param and min over PARAMS)."""
    ok = [r for r in runs if "error" not in r]
    row: dict = {"repeats": len(ok), "errors": [r["error"] for r in runs if "error" in r]}
    if not ok:
        return row
    for key in ("build_seconds", "sampling_seconds", "whole_seconds", "cpu_seconds"):
        row[key] = _median([r[key] for r in ok])
    per = [_ess_per_s(r) for r in ok]
    row["ess_per_s"] = {p: _median([e[p] for e in per]) for p in PARAMS}
    row["min_ess_per_s"] = _median([min(e.values()) for e in per])
    row["ess_bulk"] = {p: _median([r["ess_bulk"][p] for r in ok]) for p in PARAMS}
    row["mean"] = {p: _median([r["mean"][p] for r in ok]) for p in PARAMS}
    row["mcse_mean"] = {p: _median([r["mcse_mean"][p] for r in ok]) for p in PARAMS}
    if all("grad_evals" in r for r in ok):
        row["us_per_grad"] = _median(
            [1e6 * r["sampling_seconds"] / max(r["grad_evals"], 1) for r in ok]
        )
        row["ess_per_1k_grads"] = _median(
            [1e3 * min(r["ess_bulk"].values()) / max(r["grad_evals"], 1) for r in ok]
        )
    row["divergences"] = _median([r.get("divergences", 0) for r in ok])
    row["missing_names"] = sorted({n for r in ok for n in r["missing_names"]})
    return row


def ratios(gen: dict, hand: dict) -> dict:
    """Generated / hand-written ESS per second: per param and of the min over PARAMS."""
    if "ess_per_s" not in gen or "ess_per_s" not in hand:
        return {}
    out = {p: gen["ess_per_s"][p] / hand["ess_per_s"][p] for p in PARAMS}
    out["min"] = gen["min_ess_per_s"] / hand["min_ess_per_s"]
    # ESS/s = (ESS per gradient) / (seconds per gradient): which factor moved?
    if "ess_per_1k_grads" in gen and "ess_per_1k_grads" in hand:
        out["ess_per_grad"] = gen["ess_per_1k_grads"] / hand["ess_per_1k_grads"]
        out["grad_speed"] = hand["us_per_grad"] / gen["us_per_grad"]
    return out


def _parse_backends(text: str) -> list[tuple[str, str]]:
    chosen: list[tuple[str, str]] = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        backend, _, engine = item.partition(":")
        matches = [c for c in COMBOS if c[0] == backend and (not engine or c[1] == engine)]
        if not matches:
            known = ", ".join(f"{b}:{e}" for b, e in COMBOS)
            raise SystemExit(f"unknown backend/engine {item!r}; choose from {known}")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def _fmt(value, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:.{digits}f}"


HEADERS = (
    "backend", "engine", "program", "cache", "build s", "sampling s", "whole s", "CPU s",
    *(f"ESS/s {p}" for p in PARAMS), "min ESS/s", "us/grad", "ESS/1k grads", "div",
)
RATIO_HEADERS = (
    "backend", "engine", "cache", "ratio min", *(f"ratio {p}" for p in PARAMS),
    "ESS/grad ratio", "grad speed ratio", "goal",
)


def table_rows(report: dict) -> list[list[str]]:
    """Rows of the main table: one per backend, engine, program and cache."""
    rows = []
    for entry in report["results"]:
        for program in report["settings"]["programs"]:
            row = entry[program]
            head = [entry["backend"], entry["engine"], program, entry["cache"]]
            if not row.get("repeats"):
                msg = row["errors"][0].splitlines()[-1][:70] if row.get("errors") else "failed"
                rows.append([*head, f"FAILED: {msg}"] + [""] * (len(HEADERS) - len(head) - 1))
                continue
            eps = row["ess_per_s"]
            rows.append([
                *head,
                _fmt(row["build_seconds"], 2), _fmt(row["sampling_seconds"], 2),
                _fmt(row["whole_seconds"], 2), _fmt(row.get("cpu_seconds"), 1),
                *(_fmt(eps[p], 0) for p in PARAMS), _fmt(row["min_ess_per_s"], 0),
                _fmt(row.get("us_per_grad"), 1), _fmt(row.get("ess_per_1k_grads"), 1),
                _fmt(row.get("divergences"), 0),
            ])
    return rows


def ratio_rows(report: dict) -> list[list[str]]:
    """Rows of the ratio table: generated / hand-written ESS per second."""
    rows = []
    for entry in report["results"]:
        ratio = entry["ratio"]
        if "min" not in ratio:
            goal = "-"
        elif entry["cache"] != "warm":
            goal = "n/a"  # the goal is about warm runs; cold ones mostly time compilers
        else:
            goal = "met" if ratio["min"] >= GOAL else "MISSED"
        rows.append([
            entry["backend"], entry["engine"], entry["cache"], _fmt(ratio.get("min"), 2),
            *(_fmt(ratio.get(p), 2) for p in PARAMS), _fmt(ratio.get("ess_per_grad"), 2),
            _fmt(ratio.get("grad_speed"), 2), goal,
        ])
    return rows


def format_text(headers, rows: list[list[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def format_markdown(headers, rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def verdict(report: dict) -> list[str]:
    """One line per backend/engine: does the generated program reach the goal?"""
    lines = []
    for entry in report["results"]:
        label = f"{entry['backend']}:{entry['engine']} ({entry['cache']})"
        ratio = entry["ratio"].get("min")
        if ratio is None:
            lines.append(f"{label:24s} no ratio (a program was not run or failed)")
        elif entry["cache"] != "warm":
            lines.append(f"{label:24s}        generated/hand min ESS/s = {ratio:.2f} "
                         "(cold: not judged)")
        else:
            ok = "met   " if ratio >= GOAL else "MISSED"
            lines.append(f"{label:24s} {ok} generated/hand min ESS/s = {ratio:.2f} "
                         f"(goal >= {GOAL})")
        gen, hand = entry.get("generated", {}), entry.get("hand", {})
        if "mean" in gen and "mean" in hand:
            for p in PARAMS:  # posterior means must agree: the programs fit the same model
                diff = abs(gen["mean"][p] - hand["mean"][p])
                tol = 5 * (gen["mcse_mean"][p] ** 2 + hand["mcse_mean"][p] ** 2) ** 0.5
                if diff > tol:
                    lines.append(f"{'':24s} WARNING: {p} means differ: generated "
                                 f"{gen['mean'][p]:.4g} vs hand {hand['mean'][p]:.4g}")
        for program, row in (("generated", gen), ("hand", hand)):
            if row.get("missing_names"):
                lines.append(f"{'':24s} WARNING: {program} lacks {row['missing_names']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    from crossppl.config import FitConfig

    defaults = FitConfig()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default=",".join(f"{b}:{e}" for b, e in COMBOS),
                    help="comma-separated backend[:engine] (default: all of "
                         + ", ".join(f"{b}:{e}" for b, e in COMBOS) + ")")
    ap.add_argument("--chains", type=int, default=defaults.chains)
    ap.add_argument("--warmup", type=int, default=defaults.warmup)
    ap.add_argument("--draws", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=defaults.seed,
                    help="seed of repeat 0; repeat r uses seed + r (both programs alike)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed warm-cache runs per program (0: none); the table shows medians")
    ap.add_argument("--cold", action="store_true",
                    help="also time cold-cache runs (every compile cache empty, per run)")
    ap.add_argument("--cold-repeats", type=int, default=1, choices=range(1, 101),
                    metavar="N",
                    help="timed cold-cache runs per program (default 1: compiles are slow)")
    ap.add_argument("--programs", default="generated,hand",
                    help="which programs to run (default: generated,hand)")
    ap.add_argument("--json", type=Path, help="write the full report here")
    ap.add_argument("--markdown", action="store_true", help="also print a markdown table")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per fit subprocess")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        worker(json.loads(args.worker), args.result)
        return 0

    combos = _parse_backends(args.backends)
    programs = [p.strip() for p in args.programs.split(",") if p.strip()]
    if not programs or set(programs) - {"generated", "hand"}:
        raise SystemExit("--programs takes generated, hand or both")
    settings = {
        "chains": args.chains,
        "warmup": args.warmup,
        "draws": args.draws,
        "target_accept": defaults.target_accept,
        "max_treedepth": defaults.max_treedepth,
    }
    report: dict = {
        "settings": {**settings, "seed": args.seed, "repeats": args.repeats,
                     "cold_repeats": args.cold_repeats if args.cold else 0,
                     "programs": programs},
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
        "results": [],
    }
    caches = [*(["warm"] if args.repeats > 0 else []), *(["cold"] if args.cold else [])]
    if not caches:
        raise SystemExit("nothing to run: --repeats 0 without --cold")
    print(f"settings: {report['settings']}; load average {os.getloadavg()[0]:.2f}", flush=True)
    for backend, engine in combos:
        for cache in caches:
            runs: dict[str, list[dict]] = {p: [] for p in programs}
            base = {"backend": backend, "engine": engine, **settings}
            if cache == "warm":  # fill the compile caches (untimed)
                # JAX compiles for the exact warmup/draws counts; the others once per program.
                short = {} if backend == "numpyro" else {"warmup": 20, "draws": 20}
                for program in runs:
                    prime = {**base, "program": program, "seed": args.seed, **short}
                    res = run_job(prime, env=_warm_env(), timeout=args.timeout)
                    if "error" in res:
                        print(f"  prime {backend}:{engine} {program} failed: "
                              f"{res['error'].splitlines()[-1]}", flush=True)
            repeats = args.repeats if cache == "warm" else args.cold_repeats
            for r in range(repeats):
                # alternate which program goes first, so drift in machine load is shared
                order = programs if r % 2 == 0 else programs[::-1]
                for program in order:
                    job = {**base, "program": program, "seed": args.seed + r}
                    env = _warm_env()
                    tmp = None
                    if cache == "cold":
                        tmp = Path(tempfile.mkdtemp(prefix="rats_speed_cold_"))
                        env = _cold_env(tmp)
                    try:
                        res = run_job(job, env=env, timeout=args.timeout)
                    finally:
                        if tmp is not None:
                            shutil.rmtree(tmp, ignore_errors=True)
                    runs[program].append(res)
                    if "error" in res:
                        status = "FAILED " + res["error"].splitlines()[-1][:100]
                    else:
                        status = (f"build {res['build_seconds']:.2f}s sampling "
                                  f"{res['sampling_seconds']:.2f}s whole "
                                  f"{res['whole_seconds']:.2f}s min ESS/s "
                                  f"{min(_ess_per_s(res).values()):.0f}")
                    print(f"  {backend}:{engine} {program} {cache} #{r}: {status} "
                          f"(load {os.getloadavg()[0]:.2f})", flush=True)
            entry = {"backend": backend, "engine": engine, "cache": cache}
            entry.update({p: aggregate(runs[p]) for p in programs})
            entry["ratio"] = ratios(entry.get("generated", {}), entry.get("hand", {}))
            entry["runs"] = runs
            report["results"].append(entry)
    report["machine"]["loadavg_end"] = os.getloadavg()

    rows, rrows = table_rows(report), ratio_rows(report)
    print()
    print(format_text(HEADERS, rows))
    print()
    print(format_text(RATIO_HEADERS, rrows))
    print()
    print("\n".join(verdict(report)))
    if args.markdown:
        print()
        print(format_markdown(HEADERS, rows))
        print()
        print(format_markdown(RATIO_HEADERS, rrows))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
