"""Calibration benchmark of ``crossppl.compare`` on Rats: false alarms and power.

**False-alarm rate.** ``--replications`` independent runs (seeds ``seed``, ``seed + 1``, ...) of
``compare("rats", backends=...)`` with correct generated programs. Holm controls the
family-wise error over all tests of one comparison at ``--alpha``, so the share of "mismatch"
verdicts must not exceed alpha. Every rejected test is recorded (pair, parameter, statistic, z)
so that a miscalibration can be traced, and the z of EVERY test feeds a calibration summary:
when the posteriors agree each z is ~N(0, 1), so about 5% of |z| exceed 1.96 and the mean of
z^2 is about 1, per statistic and per parameter (the Pareto k of tau_beta is reported too: above
0.7 its mean and sd are not tested).

**Power.** Every deliberately wrong NumPyro port of Rats in ``tests/fixtures/ports/wrong/`` (and
the correct port ``rats_numpyro_ok.py`` as a control: its "detections" are false alarms of the
generated-vs-hand-written pair) against crossppl's generated NumPyro program,
``--power-reps`` times with fresh seeds: the share detected (verdict "mismatch") and by which
mechanism, the log-density check (no sampling needed) and/or the agreement tests (which
parameter / statistic). A port whose own fit fails the diagnostics gate is left out of the
agreement tests, so for such ports only the density check can give "mismatch" (the table shows
both counts, and which fits failed the gate). By default (``--power-mode auto``: compare) each
port is one ``compare("rats", backends=["numpyro"], programs=[port])`` call, which fits the
port with a seed of its own (``compare`` gives every hand-written program one, so a correct port
with the generated program's site order is an honest control). ``--power-mode manual`` mirrors
``crossppl/comparison.py`` step by step (``crossppl.api.fit`` / ``fit_program``,
``summarize`` / ``pairwise_tests`` / ``check_density`` / ``decide``) with ONE generated fit per
replication shared by all ports and a different seed for the ports: half the fits, and an
honest control.

    .venv/bin/python bench/calibration.py                               # 20 reps, 3 power reps
    .venv/bin/python bench/calibration.py --replications 2 --power-reps 1 --draws 300 --warmup 300
    .venv/bin/python bench/calibration.py --backends numpyro,pymc --json out.json --markdown

Fits run one at a time (each in its own process, as ``compare`` runs them): the machine has
two cores and one fit's four chains already fill them.
"""

from __future__ import annotations

import argparse
import collections
import inspect
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PORTS = ROOT / "tests" / "fixtures" / "ports"
WRONG = PORTS / "wrong"
OK_PORT = PORTS / "rats_numpyro_ok.py"
SPEC = "rats"
#: Scalars whose summaries are kept per replication, to trace a miscalibration.
KEY_SCALARS = ("mu_alpha", "mu_beta", "tau_alpha", "tau_beta", "tau", "sigma")


def say(message: str) -> None:
    """A progress line on standard error."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Hand-written programs
# --------------------------------------------------------------------------------------------


def port_program(path: Path):
    """The :class:`UserProgram` of one port file."""
    from crossppl.backends.base import UserProgram

    path = Path(path)
    return UserProgram(backend="numpyro", path=path, entry="model", label=path.stem)


def ports(selection: str) -> list[Path]:
    """The port files chosen by ``--ports`` (comma-separated stems, ``all``, ``ok``)."""
    wrong = sorted(WRONG.glob("*.py"))
    chosen = []
    for item in [s.strip() for s in selection.split(",") if s.strip()]:
        if item == "all":
            chosen += [OK_PORT, *wrong]
        elif item in ("ok", OK_PORT.stem):
            chosen.append(OK_PORT)
        else:
            hits = [p for p in wrong if p.stem == item]
            if not hits:
                raise SystemExit(f"no port {item!r}; ports: ok, {', '.join(p.stem for p in wrong)}")
            chosen += hits
    return list(dict.fromkeys(chosen))


def bug_line(path: Path) -> str:
    """The port's one-line description of its bug (first docstring line, after the colon)."""
    doc = inspect.cleandoc(Path(path).read_text().split('"""')[1])
    first = doc.splitlines()[0]
    return first.split("Bug: ", 1)[1].strip() if "Bug: " in first else "none (correct port)"


def _fit_port_job(spec: str, path: str, **settings):
    """Run-fits target (top level, so a spawned process can find it)."""
    from crossppl.api import fit_program

    return fit_program(spec, port_program(Path(path)), **settings)


def compare_takes_programs() -> bool:
    """Whether ``crossppl.comparison.compare`` accepts hand-written programs yet."""
    from crossppl.comparison import compare

    return "programs" in inspect.signature(compare).parameters


# --------------------------------------------------------------------------------------------
# What is kept of one comparison
# --------------------------------------------------------------------------------------------


def _f(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(value, 6)


def record_comparison(verdict, tests, density, sources, *, keep_all_z: bool) -> dict:
    """Verdict, rejected tests, density check, diagnostics and key summaries, JSON-ready."""
    tested = tests[tests["note"] == ""] if len(tests) else tests
    rejected = tested[tested["reject"]] if len(tested) else tested
    rec = {
        "verdict": verdict.kind,
        "reasons": list(verdict.reasons),
        "n_tests": len(tested),
        "rejected": [[r.pair, r.parameter, r.statistic, _f(r.z), _f(r.p)]
                     for r in rejected.sort_values("p").itertuples()],
        "top_z": [[r.pair, r.parameter, r.statistic, _f(r.z)]
                  for r in tested.reindex(tested["z"].abs().sort_values(ascending=False).index)
                  .head(5).itertuples()] if len(tested) else [],
        "untested": [[r.pair, r.parameter, r.statistic, r.note]
                     for r in tests[tests["note"] != ""].itertuples()] if len(tests) else [],
        "density": None,
        "sources": {},
    }
    if keep_all_z and len(tested):
        rec["z"] = [[r.pair, r.parameter, r.statistic, _f(r.z)] for r in tested.itertuples()]
    if density is not None:
        rec["density"] = [{"pair": r.pair, "spread": float(r.spread), "constant": bool(r.constant),
                           "culprits": density.culprits(r.pair)}
                          for r in density.pairs.itertuples()]
    for name, s in sources.items():
        src = {"kind": s.kind, "engine": s.engine, "ran": bool(s.ran), "ok": bool(s.ok),
               "seconds": round(float(s.seconds or 0.0), 2), "error": s.error[:500]}
        if s.diagnostics is not None:
            src["diagnostics"] = list(s.diagnostics.reasons)
        if s.summary is not None:
            src["scalars"] = {
                k: {c: _f(s.summary.loc[k, c]) for c in
                    ("mean", "mcse_mean", "sd", "mcse_sd", "q05", "q95", "khat", "ess_bulk")}
                for k in KEY_SCALARS if k in s.summary.index
            }
        rec["sources"][name] = src
    return rec


def record_result(comparison, *, keep_all_z: bool) -> dict:
    """:func:`record_comparison` of a :class:`Comparison`."""
    rec = record_comparison(comparison.verdict, comparison.tests, comparison.density,
                            comparison.sources, keep_all_z=keep_all_z)
    rec["notes"] = list(comparison.notes)
    return rec


# --------------------------------------------------------------------------------------------
# The two experiments
# --------------------------------------------------------------------------------------------


def false_alarms(args, out: dict, save) -> None:
    """Replications of compare() with correct generated programs."""
    from crossppl.comparison import compare

    reps = out["false_alarm"]["replications"]
    for r in range(args.replications):
        seed = args.seed + r
        t0 = time.perf_counter()
        c = compare(SPEC, backends=args.backends, alpha=args.alpha, chains=args.chains,
                    warmup=args.warmup, draws=args.draws, seed=seed, timeout=args.timeout,
                    progress=False)
        rec = record_result(c, keep_all_z=True)
        rec.update(replication=r, seed=seed, seconds=round(time.perf_counter() - t0, 1))
        reps.append(rec)
        flagged = "; ".join(f"{p} {s} z={z:.1f}" for _, p, s, z, _ in rec["rejected"][:3])
        say(f"false alarm {r + 1}/{args.replications} seed {seed}: {rec['verdict']} "
            f"({rec['seconds']:.0f} s){' ' + flagged if flagged else ''}")
        save()


def _points(model, posterior, n: int) -> dict[str, np.ndarray]:
    """The density check's points: ``n`` evenly spaced draws, as ``compare`` picks them."""
    flat = posterior.to_dataset().stack(sample=("chain", "draw"))
    n = min(n, flat.sizes["sample"])
    pick = np.linspace(0, flat.sizes["sample"] - 1, n).astype(int)
    return {p.name: np.moveaxis(flat[p.name].isel(sample=pick).values, -1, 0)
            for p in model.parameters}


def _source(name, kind, outcome):
    from crossppl.compare.diagnostics import diagnose
    from crossppl.compare.summary import summarize
    from crossppl.compare.verdict import Source

    if not outcome.ok:
        return Source(name, kind, ran=False, seconds=outcome.seconds, error=outcome.error)
    summary = summarize(outcome.idata["posterior"].to_dataset())
    attrs = dict(outcome.idata.posterior.attrs)
    return Source(name, kind, engine=str(attrs.get("engine", "")), seconds=outcome.seconds,
                  diagnostics=diagnose(outcome.idata, summary), summary=summary,
                  idata=outcome.idata, attrs=attrs)


def power_manual(args, files: list[Path], rep: int) -> dict[str, dict]:
    """One power replication without ``compare(programs=...)``: one generated NumPyro fit and
    one fit per port, then per port the steps of ``crossppl/comparison.py``."""
    from crossppl.backends import get_backend
    from crossppl.compare.agreement import pairwise_tests
    from crossppl.compare.density import check_density
    from crossppl.compare.verdict import decide

    from crossppl.api import fit, load_spec
    from crossppl.comparison import DENSITY_POINTS
    from crossppl.errors import CrossPPLError
    from crossppl.runner import FitJob, run_fits

    model = load_spec(SPEC)
    settings = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws,
                "progress": False}
    ref_seed, port_seed = args.seed + 100 + rep, args.seed + 200 + rep
    jobs = [FitJob("numpyro", fit, {"spec": SPEC, "backend": "numpyro", "seed": ref_seed,
                                    **settings})]
    jobs += [FitJob(p.stem, _fit_port_job, {"spec": SPEC, "path": str(p), "seed": port_seed,
                                            **settings}) for p in files]
    outcomes = run_fits(jobs, parallel=1, timeout=args.timeout,
                        progress=lambda m: say(f"  power {rep + 1}: {m.split('] ', 1)[-1]}"))
    ref = _source("numpyro", "generated", outcomes["numpyro"])
    backend = get_backend("numpyro")
    results = {}
    for path in files:
        prog = port_program(path)
        src = _source(prog.name, "program", outcomes[prog.name])
        sources = {"numpyro": ref, prog.name: src}
        healthy = {n: s.summary for n, s in sources.items() if s.ok and s.summary is not None}
        tests = pairwise_tests(healthy, alpha=args.alpha)
        donor = next((s for s in sources.values() if s.ok and s.idata is not None), None)
        density, notes = None, []
        if donor is not None and ref.ran and src.ran:
            points = _points(model, donor.idata.posterior, DENSITY_POINTS)
            try:
                generated = backend.emit(model)
                logps = {"numpyro": backend.log_density(model, generated, points),
                         prog.name: backend.log_density_user(model, prog, points)}
                terms = {"numpyro": backend.log_density_terms(model, generated, points),
                         prog.name: backend.log_density_terms(model, prog, points)}
                density = check_density(logps, {k: v for k, v in terms.items() if v})
            except (CrossPPLError, ValueError, TypeError) as exc:
                notes.append(f"log density of {prog.name} not evaluated: {exc}")
        else:
            notes.append("log densities not compared: no healthy fit to draw points from")
        verdict = decide(list(sources.values()), tests, density)
        rec = record_comparison(verdict, tests, density, sources, keep_all_z=False)
        rec.update(notes=notes, ref_seed=ref_seed, port_seed=port_seed)
        results[prog.name] = rec
    return results


def power_compare(args, files: list[Path], rep: int) -> dict[str, dict]:
    """One power replication with ``compare(programs=...)``: one call per port."""
    from crossppl.comparison import compare

    results = {}
    for path in files:
        prog = port_program(path)
        seed = args.seed + 100 + rep
        c = compare(SPEC, backends=["numpyro"], programs=[prog], alpha=args.alpha,
                    chains=args.chains, warmup=args.warmup, draws=args.draws, seed=seed,
                    timeout=args.timeout, progress=False)
        rec = record_result(c, keep_all_z=False)
        rec.update(seed=seed)
        results[prog.name] = rec
    return results


def power(args, out: dict, save) -> None:
    """Each port against the generated NumPyro program, ``--power-reps`` times."""
    files = ports(args.ports)
    mode = args.power_mode
    if mode == "auto":
        mode = "compare" if compare_takes_programs() else "manual"
    out["power"]["mode"] = mode
    out["power"]["ports"] = {p.stem: {"file": str(p.relative_to(ROOT)), "bug": bug_line(p),
                                      "correct": p == OK_PORT, "replications": []}
                             for p in files}
    for rep in range(args.power_reps):
        t0 = time.perf_counter()
        results = (power_compare if mode == "compare" else power_manual)(args, files, rep)
        for name, rec in results.items():
            rec["replication"] = rep
            out["power"]["ports"][name]["replications"].append(rec)
            say(f"power {rep + 1}/{args.power_reps} {name}: {rec['verdict']} "
                f"[{', '.join(mechanisms(rec)) or '-'}]")
        say(f"power replication {rep + 1} took {time.perf_counter() - t0:.0f} s")
        save()


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def mechanisms(rec: dict) -> list[str]:
    """What flagged a comparison: "density" and/or "tests"."""
    out = []
    if rec.get("density") and any(not d["constant"] for d in rec["density"]):
        out.append("density")
    if rec["rejected"]:
        out.append("tests")
    return out


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval of k/n."""
    from scipy.stats import beta

    if n == 0:
        return math.nan, math.nan
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def summarize_false_alarms(fa: dict, alpha: float) -> dict:
    """Rates, the tests that rejected, and the calibration of the z statistics."""
    reps = fa["replications"]
    n = len(reps)
    kinds = collections.Counter(r["verdict"] for r in reps)
    k = kinds.get("mismatch", 0)
    lo, hi = clopper_pearson(k, n)
    rejected = collections.defaultdict(list)
    for r in reps:
        for pair, param, stat, z, _ in r["rejected"]:
            rejected[(pair, param, stat)].append(z)
    by_stat = collections.defaultdict(list)
    by_elem = collections.defaultdict(list)
    for r in reps:
        for pair, param, stat, z in r.get("z", []):
            if z is None:
                continue
            by_stat[stat].append(z)
            by_elem[(pair, param, stat)].append(z)
    calib = []
    for stat, zs in by_stat.items():
        z = np.asarray(zs)
        calib.append({"statistic": stat, "n": int(z.size),
                      "share_abs_z_gt_1.96": float(np.mean(np.abs(z) > 1.96)),
                      "share_abs_z_gt_3": float(np.mean(np.abs(z) > 3)),
                      "mean_z2": float(np.mean(z ** 2)), "max_abs_z": float(np.max(np.abs(z)))})
    worst = sorted(((float(np.mean(np.square(zs))), key, zs) for key, zs in by_elem.items()
                    if len(zs) >= max(3, n // 2)), key=lambda t: -t[0])[:10]
    khat = collections.defaultdict(list)
    for r in reps:
        for name, src in r["sources"].items():
            v = src.get("scalars", {}).get("tau_beta", {}).get("khat")
            if v is not None:
                khat[name].append(v)
    untested = collections.Counter((u[1], u[2]) for r in reps for u in r.get("untested", []))
    return {
        "n": n, "mismatch": k, "inconclusive": kinds.get("inconclusive", 0),
        "match": kinds.get("match", 0), "rate": k / n if n else math.nan, "ci95": [lo, hi],
        "alpha": alpha,
        "rejected_tests": [{"pair": p, "parameter": q, "statistic": s, "count": len(zs),
                            "z": [round(z, 2) for z in zs]}
                           for (p, q, s), zs in sorted(rejected.items(), key=lambda t: -len(t[1]))],
        "z_calibration": sorted(calib, key=lambda c: c["statistic"]),
        "worst_elements": [{"pair": k_[0], "parameter": k_[1], "statistic": k_[2],
                            "mean_z2": round(m, 2), "n": len(zs),
                            "max_abs_z": round(float(np.max(np.abs(zs))), 2)}
                           for m, k_, zs in worst],
        "khat_tau_beta": {name: {"median": float(np.median(v)), "max": float(np.max(v)),
                                 "above_0.7": int(np.sum(np.asarray(v) > 0.7))}
                          for name, v in khat.items()},
        "untested": [{"parameter": p, "statistic": s, "count": c}
                     for (p, s), c in untested.most_common()],
        "seconds_per_replication": float(np.median([r["seconds"] for r in reps])) if n else None,
    }


def summarize_power(pw: dict) -> list[dict]:
    """Per port: reps, detected, by which mechanism, what was flagged."""
    rows = []
    for name, port in pw.get("ports", {}).items():
        reps = port["replications"]
        n = len(reps)
        det = sum(r["verdict"] == "mismatch" for r in reps)
        flagged = collections.defaultdict(list)
        for r in reps:
            for _, param, stat, z, _ in r["rejected"]:
                flagged[(param, stat)].append(abs(z) if z is not None else math.inf)
        top = sorted(flagged.items(), key=lambda t: (-len(t[1]), -float(np.median(t[1]))))[:3]
        n_tests = [len(r["rejected"]) for r in reps]
        failed_diag = collections.Counter(
            name_ for r in reps for name_, s in r["sources"].items()
            if s.get("ran") and not s.get("ok"))
        rows.append({
            "port": name, "bug": port["bug"], "correct": port["correct"], "reps": n,
            "detected": det, "inconclusive": sum(r["verdict"] == "inconclusive" for r in reps),
            "by_density": sum("density" in mechanisms(r) for r in reps),
            "by_tests": sum("tests" in mechanisms(r) for r in reps),
            "rejected_tests_median": float(np.median(n_tests)) if n_tests else 0.0,
            "top_flagged": [{"parameter": p, "statistic": s, "count": len(zs),
                             "median_abs_z": float(np.median(zs))} for (p, s), zs in top],
            "failed_diagnostics": dict(failed_diag),
            "density_culprits": sorted({c for r in reps for d in (r.get("density") or [])
                                        if not d["constant"] for c in d.get("culprits", [])}),
            "density_spread_median": float(np.median(
                [d["spread"] for r in reps for d in (r.get("density") or [])] or [math.nan])),
        })
    return rows


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*headers), fmt.format(*("-" * w for w in widths)),
                      *(fmt.format(*r) for r in rows)])


def render(report: dict, markdown: bool) -> str:
    """The report's tables as text (or markdown)."""
    out = []
    s = report.get("settings", {})
    out.append(f"Rats calibration: {s.get('chains')} chains x {s.get('warmup')} warmup + "
               f"{s.get('draws')} draws, alpha {s.get('alpha')}, total wall time "
               f"{report.get('wall_seconds', 0) / 60:.1f} min")
    fa = report.get("false_alarm_summary")
    if fa and fa["n"]:
        out.append("")
        out.append(f"False alarms (compare('rats', backends={s.get('backends')}), "
                   f"{fa['seconds_per_replication']:.0f} s per replication)")
        lo, hi = fa["ci95"]
        out.append(_table(
            ["replications", "mismatch", "inconclusive", "match", "false-alarm rate",
             "95% CI", "nominal alpha"],
            [[str(fa["n"]), str(fa["mismatch"]), str(fa["inconclusive"]), str(fa["match"]),
              f"{fa['rate']:.3f} ({fa['mismatch']}/{fa['n']})", f"[{lo:.3f}, {hi:.3f}]",
              f"{fa['alpha']:g}"]], markdown))
        if fa["rejected_tests"]:
            out.append("")
            out.append("Tests that rejected (replications with a false alarm)")
            out.append(_table(["pair", "parameter", "statistic", "times", "z"],
                              [[r["pair"], r["parameter"], r["statistic"], str(r["count"]),
                                ", ".join(f"{z:.1f}" for z in r["z"])]
                               for r in fa["rejected_tests"][:15]], markdown))
        out.append("")
        out.append("Calibration of z (all tests of all replications; N(0,1): 5% beyond 1.96, "
                   "0.27% beyond 3, mean z^2 = 1)")
        out.append(_table(["statistic", "tests", "abs z > 1.96", "abs z > 3", "mean z^2",
                           "max abs z"],
                          [[c["statistic"], str(c["n"]), f"{c['share_abs_z_gt_1.96']:.3f}",
                            f"{c['share_abs_z_gt_3']:.4f}", f"{c['mean_z2']:.2f}",
                            f"{c['max_abs_z']:.1f}"] for c in fa["z_calibration"]], markdown))
    if fa and fa["n"] and fa["worst_elements"]:
        out.append("")
        out.append("Elements with the largest mean z^2 over replications")
        out.append(_table(["pair", "parameter", "statistic", "mean z^2", "max abs z"],
                          [[w["pair"], w["parameter"], w["statistic"], f"{w['mean_z2']:.2f}",
                            f"{w['max_abs_z']:.1f}"] for w in fa["worst_elements"][:8]],
                          markdown))
    if fa and fa["n"] and fa["khat_tau_beta"]:
        out.append("")
        out.append("Pareto k-hat of tau_beta (mean/sd untested above 0.7)")
        out.append(_table(["source", "median", "max", "reps above 0.7"],
                          [[n, f"{v['median']:.2f}", f"{v['max']:.2f}", str(v["above_0.7"])]
                           for n, v in fa["khat_tau_beta"].items()], markdown))
    pw = report.get("power_summary")
    if pw:
        out.append("")
        out.append(f"Power: each port against the generated NumPyro program "
                   f"({report['power'].get('mode')} mode)")
        rows = []
        for r in pw:
            top = "; ".join(f"{t['parameter']} {t['statistic']} z~{t['median_abs_z']:.0f}"
                            for t in r["top_flagged"][:2])
            mech = []
            if r["by_density"]:
                terms = f" ({', '.join(r['density_culprits'])})" if r["density_culprits"] else ""
                mech.append(f"density {r['by_density']}/{r['reps']}{terms}")
            if r["by_tests"]:
                mech.append(f"tests {r['by_tests']}/{r['reps']}")
            diag = ", ".join(f"{k} {v}x" for k, v in r["failed_diagnostics"].items())
            label = f"{r['port']} (correct)" if r["correct"] else r["port"]
            rate = r["detected"] / r["reps"] if r["reps"] else math.nan
            rows.append([label, f"{r['detected']}/{r['reps']} ({rate:.0%})",
                         str(r["inconclusive"]), ", ".join(mech) or "-",
                         top or "-", diag or "-"])
        out.append(_table(["port", "detected", "inconcl.", "caught by", "top flagged tests",
                           "failed diagnostics"], rows, markdown))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def agreement_settings() -> dict:
    """The constants of ``crossppl.compare.agreement`` in force (they change the verdicts)."""
    from crossppl.compare import agreement

    return {k: getattr(agreement, k) for k in ("MCSE_DF", "KHAT_MAX") if hasattr(agreement, k)}


def default_backends() -> list[str]:
    """numpyro and pymc, and stan when its package and an engine are installed."""
    import importlib.util

    names = ["numpyro", "pymc"]
    if importlib.util.find_spec("stan") or importlib.util.find_spec("cmdstanpy"):
        try:
            from crossppl.backends import get_backend

            get_backend("stan").default_engine()
            names.append("stan")
        except Exception:  # Stan not usable here: leave it out
            pass
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", help="comma-separated backends of the false-alarm runs "
                    "(default: numpyro,pymc and stan when installed)")
    ap.add_argument("--replications", type=int, default=20, help="false-alarm replications")
    ap.add_argument("--power-reps", type=int, default=3, help="replications per port")
    ap.add_argument("--ports", default="all",
                    help="comma-separated port stems, 'ok' and/or 'all' (default)")
    ap.add_argument("--power-mode", choices=("auto", "compare", "manual"), default="auto",
                    help="one compare(programs=...) per port (auto: when compare takes "
                    "programs), or the loop done here with one shared generated fit (manual)")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1, help="seed of replication 0")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per fit")
    ap.add_argument("--json", type=Path, help="write the full report here (after every step)")
    ap.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    args = ap.parse_args(argv)
    args.backends = ([b.strip() for b in args.backends.split(",") if b.strip()]
                     if args.backends else default_backends())
    if args.power_reps:
        ports(args.ports)  # fail on a bad name before any fit

    t0 = time.perf_counter()
    report = {
        "settings": {"spec": SPEC, "backends": args.backends, "chains": args.chains,
                     "warmup": args.warmup, "draws": args.draws, "seed": args.seed,
                     "alpha": args.alpha, "replications": args.replications,
                     "power_reps": args.power_reps, "ports": args.ports,
                     "agreement": agreement_settings()},
        "false_alarm": {"replications": []},
        "power": {"ports": {}},
    }

    def save() -> None:
        report["wall_seconds"] = round(time.perf_counter() - t0, 1)
        report["false_alarm_summary"] = summarize_false_alarms(report["false_alarm"], args.alpha)
        report["power_summary"] = summarize_power(report["power"])
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.json.with_suffix(args.json.suffix + ".part")
            tmp.write_text(json.dumps(report, indent=1, default=str))
            tmp.replace(args.json)

    if args.replications:
        false_alarms(args, report, save)
    if args.power_reps:
        power(args, report, save)
    save()
    print(render(report, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
