"""Whole-job speed: ``crossppl compare rats`` against three hand-written scripts, side by side.

The user's alternative to ``crossppl compare rats --backends stan,pymc,numpyro`` is to run the
three hand-written programs of ``bench/hand/`` (PyStan with its cached build, the seed page's
PyMC program on nutpie, NumPyro) one after another. This script times both, warm (every
compile cache filled by an untimed first round), alternating which goes first in each round:

* ``crossppl``: the installed console script, ``crossppl compare rats --backends
  stan,pymc,numpyro --chains 4 --warmup 1000 --draws 3000 --seed S --json ...`` (fits, density
  check, tests, report), as a user runs it;
* ``hand``: ``bench/rats_speed.py``'s worker for each hand-written program, one fresh process
  each, one after another (fit and ArviZ conversion; no comparison at all).

It prints, per round and as medians: wall seconds, CPU seconds (user + system of the process
tree), CPU / wall (how many cores were busy on average) and the ratio crossppl / hand of wall
time. Goal (issue 11): ratio <= 0.5.

    .venv/bin/python bench/whole_job.py                  # 3 rounds after a warm-up round
    .venv/bin/python bench/whole_job.py --rounds 5 --json bench/out/whole_job.json --markdown

Run it on an otherwise idle machine: the load average is recorded with every run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from rats_speed import _warm_env, run_job  # noqa: E402  (bench/rats_speed.py's worker)

ROOT = HERE.parent
#: The hand-written programs, in the order a user would run them, as rats_speed.py jobs.
HAND = (("stan", "pystan"), ("pymc", "nutpie"), ("numpyro", "numpyro"))
BACKENDS = ",".join(b for b, _ in HAND)
GOAL = 0.5


def _crossppl() -> str:
    """The installed console script next to this interpreter (else the one on PATH)."""
    here = Path(sys.executable).parent / "crossppl"
    found = str(here) if here.exists() else shutil.which("crossppl")
    if found is None:
        sys.exit("no `crossppl` console script: pip install -e '.[all]' first")
    return found


def _timed(cmd: list[str], env: dict[str, str]) -> dict:
    """Run ``cmd``; wall and CPU seconds of its process tree, exit status, load average."""
    load = os.getloadavg()[0]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    out = {"wall": wall, "cpu": cpu, "rc": proc.returncode, "loadavg": load}
    if proc.returncode not in (0, 1):  # 1: a mismatch, still a finished job
        out["error"] = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
    return out


def run_crossppl(args: argparse.Namespace, seed: int, env: dict[str, str]) -> dict:
    """One ``crossppl compare rats`` over the three backends."""
    with tempfile.TemporaryDirectory(prefix="whole_job_") as tmp:
        cmd = [_crossppl(), "compare", "rats", "--backends", BACKENDS, "--chains",
               str(args.chains), "--warmup", str(args.warmup), "--draws", str(args.draws),
               "--seed", str(seed), "--json", str(Path(tmp) / "rats.json"), "--force"]
        result = _timed(cmd, env)
        report = Path(tmp) / "rats.json"
        if report.exists():
            result["verdict"] = json.loads(report.read_text())["verdict"]
    return result


def run_hand(args: argparse.Namespace, seed: int, env: dict[str, str]) -> dict:
    """The three hand-written programs, one fresh process each, one after another."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    parts = {}
    for backend, engine in HAND:
        job = {"program": "hand", "backend": backend, "engine": engine, "chains": args.chains,
               "warmup": args.warmup, "draws": args.draws, "seed": seed,
               "target_accept": 0.8, "max_treedepth": 10}
        res = run_job(job, env=env)
        parts[backend] = {"wall": res["whole_seconds"], "error": res.get("error")}
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    errors = [f"{b}: {p['error']}" for b, p in parts.items() if p["error"]]
    out = {"wall": wall, "cpu": cpu, "loadavg": load, "parts": parts}
    if errors:
        out["error"] = "\n".join(errors)
    return out


def _row(name: str, runs: list[dict]) -> list[str]:
    wall = statistics.median(r["wall"] for r in runs)
    cpu = statistics.median(r["cpu"] for r in runs)
    return [name, f"{wall:.1f}", f"{cpu:.1f}", f"{cpu / wall:.2f}",
            " ".join(f"{r['wall']:.1f}" for r in runs)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1, help="seed of round 1 (then +1, ...)")
    ap.add_argument("--json", type=Path, help="write every run and the medians here")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = ap.parse_args(argv)
    env = _warm_env()

    print("warm-up round (untimed): fills the httpstan, PyTensor/nutpie and JAX caches",
          file=sys.stderr)
    for run in (run_hand, run_crossppl):
        res = run(args, args.seed, env)
        if "error" in res:
            print(res["error"], file=sys.stderr)
            return 1
    runs: dict[str, list[dict]] = {"crossppl": [], "hand": []}
    for k in range(args.rounds):
        order = (("crossppl", run_crossppl), ("hand", run_hand))
        for name, run in order if k % 2 == 0 else order[::-1]:
            res = run(args, args.seed + k, env)
            if "error" in res:
                print(f"{name}, round {k + 1}:\n{res['error']}", file=sys.stderr)
                return 1
            runs[name].append(res)
            print(f"round {k + 1} {name}: {res['wall']:.1f} s wall, {res['cpu']:.1f} s CPU "
                  f"(load {res['loadavg']:.1f})", file=sys.stderr)

    header = ["job", "wall s (median)", "CPU s (median)", "CPU / wall", "wall s, each round"]
    rows = [_row("crossppl compare rats (stan, pymc, numpyro)", runs["crossppl"]),
            _row("3 hand-written scripts, one after another", runs["hand"])]
    ratio = (statistics.median(r["wall"] for r in runs["crossppl"])
             / statistics.median(r["wall"] for r in runs["hand"]))
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"\nratio crossppl / hand (wall): {ratio:.2f}  (goal <= {GOAL}; "
          f"{args.chains} chains x ({args.warmup} + {args.draws}), {args.rounds} rounds, "
          f"{os.cpu_count()} cores)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "settings": vars(args) | {"json": str(args.json)}, "runs": runs, "ratio": ratio,
            "python": platform.python_version(), "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
