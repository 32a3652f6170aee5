"""Power of ``crossppl compare`` on held-out-style wrong ports: other models, every PPL.

``bench/calibration.py`` measures power on 12 wrong NumPyro ports of Rats, all copies of one
correct port. This script holds the ports of ``tests/fixtures/ports/heldout/`` against the spec:
programs written the way an outside user writes them (own names, own layout, Stan, PyMC and
NumPyro), on pump, seeds, surgical, blocker and eight_schools, each with ONE realistic
translation bug stated in its first line ("WRONG <model> port. Bug: ..."), plus one correct
port per model ("CORRECT <model> port"), the control: its "detections" are false alarms.
``ports.toml`` in that folder says how crossppl calls each (PPL, entry function, names).

Each port runs ``--reps`` times (seeds ``--seed``, ``--seed + 1``, ...) as one
``crossppl.compare(model, backends=[partner], programs=[port])``: the port against the
GENERATED program of another PPL (default: a Stan port against NumPyro, a PyMC port against
Stan, a NumPyro port against PyMC; ``--against`` picks one for all), with the spec's default
fit settings (its ``[fit]``, else FitConfig's). Recorded per replication: the verdict and what
gave it: the log-density check (which variable's terms differ, spread against tolerance) and
the agreement tests (which parameter, statistic and z), with the diagnostics of each fit (a fit
that fails the gate is left out of the tests, so then only the density check can give
"mismatch"). The table gives, per port, detected k/n and by what; the summary the overall
detection rate of the wrong ports with an exact (Clopper-Pearson) 95% interval, and how often
the controls were flagged.

    .venv/bin/python bench/heldout_power.py                          # 3 reps, every port
    .venv/bin/python bench/heldout_power.py --reps 1 --ports pump_ok,pump_gamma_scale
    .venv/bin/python bench/heldout_power.py --against numpyro --markdown --resume

Fits run as ``compare`` runs them (each in its own process). About an hour and a half for
the default run on 2 cores, the first Stan builds (each Stan port and each generated Stan
program, with their terms programs) included; ``--json`` (default
``bench/out/heldout_power.json``) is rewritten after every comparison, and ``--resume`` skips
the (port, replication) pairs it already holds.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import json
import math
import platform
import re
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
from calibration import _table, clopper_pearson  # bench/calibration.py: the same tables

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HELDOUT = ROOT / "tests" / "fixtures" / "ports" / "heldout"
MANIFEST = HELDOUT / "ports.toml"
#: The generated program each PPL's ports are held against by default: another PPL's.
PARTNER = {"stan": "numpyro", "pymc": "stan", "numpyro": "pymc"}
#: Packages whose versions are recorded.
PACKAGES = ("crossppl", "numpy", "arviz-stats", "pystan", "httpstan", "pymc", "pytensor",
            "nutpie", "numpyro", "jax")
FIRST_LINE = re.compile(r"^(?://|\"\"\")\s*(WRONG|CORRECT) (\w+) port\b(?:.*?Bug: (.*))?")


def say(message: str) -> None:
    """A progress line on standard error."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The ports
# --------------------------------------------------------------------------------------------


def load_ports(folder: Path = HELDOUT) -> dict[str, dict]:
    """Every port of ``folder`` by stem: file, PPL, entry, names, model, bug, correct.

    The model and the bug come from the file's first line, how to call it from
    ``ports.toml``; a port missing from either is an error.
    """
    manifest = tomllib.loads((folder / "ports.toml").read_text(encoding="utf-8"))
    files = sorted(p for p in folder.iterdir() if p.suffix in (".stan", ".py"))
    unlisted = sorted({p.name for p in files} ^ set(manifest))
    if unlisted:
        raise SystemExit(f"ports.toml and {folder} disagree on: {', '.join(unlisted)}")
    ports = {}
    for path in files:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        match = FIRST_LINE.match(first)
        if match is None:
            raise SystemExit(f"{path.name}: the first line must say 'WRONG <model> port. Bug: "
                             f"...' or 'CORRECT <model> port', found {first!r}")
        kind, model, bug = match.groups()
        meta = manifest[path.name]
        ports[path.stem] = {
            "file": str(path.relative_to(ROOT)), "path": path, "backend": meta["backend"],
            "entry": meta.get("entry"), "names": dict(meta.get("names", {})), "model": model,
            "correct": kind == "CORRECT",
            "bug": "none (correct port)" if kind == "CORRECT" else (bug or "?").rstrip("."),
        }
    return ports


def user_program(port: dict):
    """The :class:`~crossppl.backends.base.UserProgram` of one port."""
    from crossppl.backends.base import UserProgram

    return UserProgram(port["backend"], Path(port["path"]), port["entry"],
                       tuple(port["names"].items()), label="port")


def choose(ports: dict[str, dict], selection: str) -> list[str]:
    """The port stems chosen by ``--ports`` (comma-separated stems, ``all``, ``wrong``,
    ``ok``, or a model's name)."""
    chosen: list[str] = []
    for item in [s.strip() for s in selection.split(",") if s.strip()]:
        if item == "all":
            chosen += list(ports)
        elif item in ("wrong", "ok"):
            chosen += [k for k, p in ports.items() if p["correct"] == (item == "ok")]
        elif item in ports:
            chosen.append(item)
        elif any(p["model"] == item for p in ports.values()):
            chosen += [k for k, p in ports.items() if p["model"] == item]
        else:
            raise SystemExit(f"no port {item!r}; ports: {', '.join(ports)}")
    return list(dict.fromkeys(chosen))


# --------------------------------------------------------------------------------------------
# One comparison
# --------------------------------------------------------------------------------------------


def _f(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else round(value, 6)


def record(comparison) -> dict:
    """Verdict, density check (with each culprit's spread and tolerance), rejected tests and
    diagnostics of one :class:`~crossppl.compare.result.Comparison`, JSON-ready."""
    tests = comparison.tests
    tested = tests[tests["note"] == ""] if len(tests) else tests
    rejected = tested[tested["reject"]] if len(tested) else tested
    rec = {
        "verdict": comparison.verdict.kind,
        "reasons": list(comparison.verdict.reasons),
        "notes": list(comparison.notes),
        "n_tests": len(tested),
        "rejected": [[r.parameter, r.statistic, _f(r.z), _f(r.z_crit)]
                     for r in rejected.sort_values("p").itertuples()],
        "top_z": [[r.parameter, r.statistic, _f(r.z), _f(r.z_crit)]
                  for r in tested.reindex(tested["z"].abs().sort_values(ascending=False).index)
                  .head(3).itertuples()] if len(tested) else [],
        "density": None,
        "sources": {},
    }
    density = comparison.density
    if density is not None and len(density.pairs):
        row = density.pairs.iloc[0]
        terms = density.terms
        rec["density"] = {
            "constant": bool(row["constant"]), "spread": _f(row["spread"]),
            "tolerance": _f(row["tolerance"]), "density_constant": bool(row["density_constant"]),
            "culprits": {t.variable: [_f(t.spread), _f(t.tolerance)]
                         for t in terms[terms["variable"].isin(density.culprits(row["pair"]))]
                         .itertuples()},
        }
    for name, s in comparison.sources.items():
        src = {"kind": s.kind, "engine": s.engine, "ran": bool(s.ran), "ok": bool(s.ok),
               "seconds": round(float(s.seconds or 0.0), 1), "error": s.error[-500:]}
        if s.diagnostics is not None:
            src["diagnostics"] = list(s.diagnostics.reasons)
        rec["sources"][name] = src
    return rec


def mechanisms(rec: dict) -> list[str]:
    """What flagged a comparison: "density" and/or "tests"."""
    out = []
    if rec["density"] is not None and not rec["density"]["constant"]:
        out.append("density")
    if rec["rejected"]:
        out.append("tests")
    return out


def run_one(port: dict, partner: str, seed: int, args) -> dict:
    """One ``compare`` of ``port`` against ``partner``'s generated program."""
    from crossppl.comparison import compare

    t0 = time.perf_counter()
    c = compare(port["model"], backends=[partner], programs=[user_program(port)],
                alpha=args.alpha, seed=seed, timeout=args.timeout, progress=False)
    rec = record(c)
    rec.update(seed=seed, partner=partner, seconds=round(time.perf_counter() - t0, 1),
               settings=dict(c.settings))
    return rec


# --------------------------------------------------------------------------------------------
# Summaries and tables
# --------------------------------------------------------------------------------------------


def caught_by(reps: list[dict]) -> str:
    """How a port's replications were flagged: density (its culprits, spread / tolerance) and
    tests (the parameters and statistics that rejected most often, median |z|)."""
    n = len(reps)
    parts = []
    by_density = [r for r in reps if "density" in mechanisms(r)]
    if by_density:
        ratios = collections.defaultdict(list)
        for r in by_density:
            culprits = r["density"]["culprits"]
            if not culprits:  # the whole density only
                ratios["whole density"].append(r["density"]["spread"] / r["density"]["tolerance"])
            for var, (spread, tol) in culprits.items():
                ratios[var].append(spread / tol if tol else math.inf)
        what = ", ".join(f"{v} {_x(np.median(x))}" for v, x in ratios.items())
        parts.append(f"density {len(by_density)}/{n} ({what})")
    by_tests = [r for r in reps if "tests" in mechanisms(r)]
    if by_tests:
        zs = collections.defaultdict(list)
        for r in by_tests:
            for param, stat, z, _ in r["rejected"]:
                zs[(re.sub(r"\[.*", "", param), stat)].append(abs(z) if z is not None else math.inf)
        top = sorted(zs.items(), key=lambda t: (-len(t[1]), -max(t[1])))[:2]
        what = "; ".join(f"{p} {s} |z| {_z(z)}" for (p, s), z in top)
        parts.append(f"tests {len(by_tests)}/{n} ({what})")
    return ", ".join(parts) or "-"


def _x(ratio: float) -> str:
    """A spread / tolerance ratio, short."""
    if not math.isfinite(ratio):
        return "inf x tol"
    return f"{ratio:.2g} x tol" if ratio < 100 else f"{ratio:.1e} x tol".replace("e+0", "e")


def _z(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.0f}" if round(lo) == round(hi) else f"{lo:.0f}-{hi:.0f}"


def failed_gate(reps: list[dict]) -> str:
    """Which fits failed the diagnostics gate, how often, and the first reason."""
    count = collections.Counter()
    why = {}
    for r in reps:
        for name, s in r["sources"].items():
            if not s["ok"]:
                count[name] += 1
                reason = s["error"].splitlines()[-1] if not s["ran"] and s["error"] else \
                    (s.get("diagnostics") or ["?"])[0]
                why.setdefault(name, reason[:60])
    return "; ".join(f"{k} {v}x ({why[k]})" for k, v in count.items()) or "-"


def summarize(report: dict) -> dict:
    """Per port counts, and the overall rates with exact 95% intervals."""
    rows = []
    for stem, port in report["ports"].items():
        reps = port["replications"]
        rows.append({
            "port": stem, "model": port["model"], "ppl": port["backend"],
            "partner": reps[0]["partner"] if reps else "", "bug": port["bug"],
            "correct": port["correct"], "n": len(reps),
            "mismatch": sum(r["verdict"] == "mismatch" for r in reps),
            "inconclusive": sum(r["verdict"] == "inconclusive" for r in reps),
            "by_density": sum("density" in mechanisms(r) for r in reps),
            "by_tests": sum("tests" in mechanisms(r) for r in reps),
            "caught_by": caught_by(reps), "failed_gate": failed_gate(reps),
        })
    out = {"ports": rows}
    for key, correct in (("wrong", False), ("controls", True)):
        sel = [r for r in rows if r["correct"] == correct]
        k, n = sum(r["mismatch"] for r in sel), sum(r["n"] for r in sel)
        lo, hi = clopper_pearson(k, n)
        out[key] = {"mismatch": k, "n": n, "rate": k / n if n else math.nan, "ci95": [lo, hi],
                    "inconclusive": sum(r["inconclusive"] for r in sel),
                    "ports_always": sum(r["mismatch"] == r["n"] for r in sel),
                    "ports": len(sel)}
    for group in ("ppl", "model"):
        by = collections.defaultdict(lambda: [0, 0])
        for r in rows:
            if not r["correct"]:
                by[r[group]][0] += r["mismatch"]
                by[r[group]][1] += r["n"]
        out[f"by_{group}"] = {g: {"mismatch": k, "n": n} for g, (k, n) in by.items()}
    return out


def render(report: dict, markdown: bool) -> str:
    """The tables as text (or markdown)."""
    s = report["summary"]
    lines = [f"Held-out-style ports: each against another PPL's generated program, "
             f"{report['settings']['reps']} replications, spec default fit settings, alpha "
             f"{report['settings']['alpha']}; wall time {report.get('wall_seconds', 0) / 60:.0f} "
             "min", ""]
    rows = []
    for r in s["ports"]:
        label = f"{r['port']} (control)" if r["correct"] else r["port"]
        det = f"{r['mismatch']}/{r['n']}" + (" flagged" if r["correct"] else "")
        rows.append([label, r["model"], r["ppl"], r["partner"], r["bug"], det,
                     str(r["inconclusive"]), r["caught_by"], r["failed_gate"]])
    lines.append(_table(["port", "model", "PPL", "vs", "bug", "detected", "inconcl.",
                         "caught by", "failed the gate"], rows, markdown))
    lines.append("")
    w, c = s["wrong"], s["controls"]
    if w["n"]:
        lines.append(f"Wrong ports: {w['mismatch']}/{w['n']} replications detected "
                     f"({w['rate']:.1%}, 95% CI {w['ci95'][0]:.1%}-{w['ci95'][1]:.1%}); "
                     f"{w['ports_always']} of {w['ports']} ports detected every time; "
                     f"{w['inconclusive']} inconclusive.")
        for group in ("ppl", "model"):
            lines.append(f"  by {group}: " + ", ".join(
                f"{g} {v['mismatch']}/{v['n']}" for g, v in s[f"by_{group}"].items()))
    if c["n"]:
        lines.append(f"Controls (correct ports): flagged {c['mismatch']}/{c['n']} "
                     f"({c['rate']:.1%}, 95% CI {c['ci95'][0]:.1%}-{c['ci95'][1]:.1%}); "
                     f"{c['inconclusive']} inconclusive.")
    flagged = [(stem, r) for stem, p in report["ports"].items() if p["correct"]
               for r in p["replications"] if r["verdict"] != "match"]
    for stem, r in flagged:
        lines.append(f"  {stem} seed {r['seed']}: {r['verdict']}: {' | '.join(r['reasons'])}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def package_versions() -> dict[str, str]:
    """Python's and the installed packages' versions."""
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="replications per port (default 3)")
    ap.add_argument("--ports", default="all",
                    help="comma-separated port stems, model names, 'wrong', 'ok' or 'all'")
    ap.add_argument("--against", choices=("auto", "stan", "pymc", "numpyro"), default="auto",
                    help="the generated program every port is held against (auto: Stan ports "
                    "against NumPyro, PyMC ports against Stan, NumPyro ports against PyMC)")
    ap.add_argument("--seed", type=int, default=1, help="seed of replication 0")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per fit")
    ap.add_argument("--json", type=Path, default=HERE / "out" / "heldout_power.json",
                    help="the full report, rewritten after every comparison")
    ap.add_argument("--resume", action="store_true",
                    help="keep the replications already in --json and run only the rest")
    ap.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    args = ap.parse_args(argv)

    ports = load_ports()
    stems = choose(ports, args.ports)
    t0 = time.perf_counter()
    previous = {}
    if args.resume and args.json.exists():
        previous = json.loads(args.json.read_text())
    report = {
        "settings": {"reps": args.reps, "seed": args.seed, "alpha": args.alpha,
                     "against": args.against, "ports": args.ports},
        "versions": package_versions(),
        "started": previous.get("started", time.strftime("%Y-%m-%d %H:%M:%S")),
        "ports": {},
    }
    for stem in stems:
        port = ports[stem]
        old = previous.get("ports", {}).get(stem, {}).get("replications", [])
        report["ports"][stem] = {k: port[k] for k in ("file", "backend", "entry", "names",
                                                      "model", "correct", "bug")}
        report["ports"][stem]["replications"] = [r for r in old if r["seed"] - args.seed
                                                 in range(args.reps)]
    spent = float(previous.get("wall_seconds", 0.0)) if previous else 0.0

    def save() -> None:
        report["wall_seconds"] = round(spent + time.perf_counter() - t0, 1)
        report["summary"] = summarize(report)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(args.json.suffix + ".part")
        tmp.write_text(json.dumps(report, indent=1, default=str))
        tmp.replace(args.json)

    for rep in range(args.reps):
        seed = args.seed + rep
        for stem in stems:
            port = report["ports"][stem]
            if any(r["seed"] == seed for r in port["replications"]):
                continue
            partner = PARTNER[port["backend"]] if args.against == "auto" else args.against
            rec = run_one(ports[stem], partner, seed, args)
            port["replications"].append(rec)
            say(f"rep {rep + 1}/{args.reps} {stem} vs {partner}: {rec['verdict']} "
                f"[{', '.join(mechanisms(rec)) or '-'}] ({rec['seconds']:.0f} s)")
            save()
    save()
    print(render(report, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
