"""Run several fits side by side, each in its own process, so one failing, hanging or crashing
engine is reported while the others finish."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FitJob", "FitOutcome", "default_parallel", "run_fits"]


@dataclass
class FitJob:
    """One fit: a name for the report, and keyword arguments for ``target``."""

    name: str
    target: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitOutcome:
    """What came back: the InferenceData, or the error that stopped the fit."""

    name: str
    idata: Any = None
    seconds: float = 0.0
    error: str = ""
    error_type: str = ""

    @property
    def ok(self) -> bool:
        """Whether the fit produced draws."""
        return self.idata is not None


def default_parallel(chains: int) -> int:
    """How many fits run at once: as many as the cores hold with one core per chain."""
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, min(chains, cores)))


def _worker(target, kwargs, out_nc: str, out_json: str) -> None:
    os.setsid()  # its own process group, so a timeout stops engine subprocesses too
    start = time.perf_counter()
    result: dict[str, Any] = {}
    try:
        idata = target(**kwargs)
        from crossppl.api import save_netcdf

        save_netcdf(idata, out_nc)
        result = {"ok": True}
    except BaseException as exc:
        from crossppl.errors import CrossPPLError

        text = str(exc) if isinstance(exc, CrossPPLError) else (
            f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
        )
        result = {"ok": False, "error": text.strip(), "error_type": type(exc).__name__}
    result["seconds"] = time.perf_counter() - start
    tmp = out_json + ".part"
    Path(tmp).write_text(json.dumps(result))
    os.replace(tmp, out_json)
    sys.stdout.flush()
    sys.stderr.flush()
    # Exit now: engines may leave worker pools (httpstan's) that multiprocessing would wait on
    # forever at exit; the parent stops whatever is left of this process group.
    os._exit(0)


def run_fits(
    jobs: list[FitJob],
    *,
    parallel: int = 1,
    timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, FitOutcome]:
    """Run ``jobs`` with at most ``parallel`` at once; return outcomes by job name.

    A job still running after ``timeout`` seconds is stopped (its whole process group) and
    reported as failed. Outputs travel through NetCDF files in a temporary folder that is
    removed afterwards.
    """
    import arviz as az

    ctx = mp.get_context("spawn")
    say = progress or (lambda _msg: None)
    outcomes: dict[str, FitOutcome] = {}
    pending = list(jobs)
    running: dict[str, tuple[Any, float, str, str]] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="crossppl-") as tmp:
        try:
            while pending or running:
                while pending and len(running) < max(1, parallel):
                    job = pending.pop(0)
                    nc = os.path.join(tmp, f"{job.name}.nc")
                    js = os.path.join(tmp, f"{job.name}.json")
                    proc = ctx.Process(target=_worker, args=(job.target, job.kwargs, nc, js),
                                       daemon=False)
                    proc.start()
                    running[job.name] = (proc, time.perf_counter(), nc, js)
                    say(f"[{time.perf_counter() - t0:6.1f}s] {job.name}: started")
                time.sleep(0.2)
                for name, (proc, started, nc, js) in list(running.items()):
                    elapsed = time.perf_counter() - started
                    finished = os.path.exists(js)
                    if proc.is_alive() and not finished and (timeout is None or elapsed < timeout):
                        continue
                    if finished:
                        proc.join(2)
                        _stop(proc)
                        outcome = _collect(name, nc, js, proc.exitcode, elapsed, az)
                    elif proc.is_alive():
                        _stop(proc)
                        outcome = FitOutcome(name, seconds=elapsed, error_type="Timeout",
                                             error=f"stopped after the timeout of {timeout:g} s")
                    else:
                        proc.join()
                        outcome = _collect(name, nc, js, proc.exitcode, elapsed, az)
                    outcomes[name] = outcome
                    del running[name]
                    state = "done" if outcome.ok else f"FAILED ({outcome.error_type})"
                    say(f"[{time.perf_counter() - t0:6.1f}s] {name}: {state} "
                        f"in {outcome.seconds:.1f} s")
        finally:
            for proc, *_ in running.values():
                _stop(proc)
    return outcomes


def _collect(name: str, nc: str, js: str, exitcode: int | None, elapsed: float, az) -> FitOutcome:
    if not os.path.exists(js):
        return FitOutcome(name, seconds=elapsed, error_type="Crash",
                          error=f"the fit's process died (exit code {exitcode})")
    result = json.loads(Path(js).read_text())
    if not result["ok"]:
        return FitOutcome(name, seconds=result["seconds"], error=result["error"],
                          error_type=result["error_type"])
    lazy = az.from_netcdf(nc)
    idata = az.InferenceData(**{g: lazy[g].load() for g in lazy.groups()})
    lazy.close()
    return FitOutcome(name, idata=idata, seconds=result["seconds"])


def _stop(proc) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    proc.join(5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the process and any engine workers it left
    proc.join()


def stderr_progress(message: str) -> None:
    """Print a progress line to standard error."""
    print(message, file=sys.stderr, flush=True)
