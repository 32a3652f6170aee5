"""Run several fits side by side, each in its own process, so one failing, hanging or crashing
engine is reported while the others finish.

Each fit runs in a worker process (spawned, never forked) in a session of its own. Whatever
ends :func:`run_fits` (the fits are done, an error, KeyboardInterrupt, or :class:`Terminated`
raised by :func:`signals_unwind` on SIGTERM), every worker's process group still running is
stopped (SIGTERM, then SIGKILL after :data:`GRACE` seconds) and the scratch folder removed. A
worker turns SIGTERM into SystemExit, so that what it started in sessions of their own (the Stan
host of :mod:`crossppl.backends.stan.engines`) is stopped as it unwinds.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossppl.api import save_netcdf
from crossppl.datatree import load_netcdf
from crossppl.errors import ConfigError, CrossPPLError
from crossppl.progress import ENV, FitProgress

__all__ = ["GRACE", "FitJob", "FitOutcome", "Terminated", "check_parallel", "check_timeout",
           "default_parallel", "own_resource_tracker", "run_fits", "signals_unwind"]

#: Seconds a stopped worker's process group has between SIGTERM and SIGKILL.
GRACE = 2.0


class Terminated(BaseException):
    """SIGTERM arrived while :func:`signals_unwind` was active; unwinds like KeyboardInterrupt."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = signum
        super().__init__(f"terminated by signal {signum}")


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """While the block runs, SIGINT raises KeyboardInterrupt and SIGTERM :class:`Terminated`,
    once: later signals are ignored while the first unwinds, so the cleanup (stopping workers,
    removing scratch folders) is not cut short. The previous handlers are restored afterwards;
    a signal ignored when the block starts stays ignored. Does nothing outside the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def unwind(signum: int, _frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is not signal.SIG_IGN:
            previous[signum] = handler
            signal.signal(signum, unwind)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


@contextlib.contextmanager
def own_resource_tracker() -> Iterator[None]:
    """Stop multiprocessing's resource tracker at the end of the block if it was started in
    the block (spawning a worker starts it), and reap it: left to stop by itself when this
    process exits, it outlives it (a zombie until init reaps it) in this process's group. For
    a block after which nothing of the tracker's is in use (a command of the CLI)."""
    from multiprocessing import resource_tracker

    tracker = resource_tracker._resource_tracker
    running = getattr(tracker, "_fd", None) is not None
    try:
        yield
    finally:
        stop = getattr(tracker, "_stop", None)  # private, in CPython 3.8 to 3.14 at least
        if not running and stop is not None and getattr(tracker, "_fd", None) is not None:
            with contextlib.suppress(Exception):
                stop()


def check_timeout(timeout: float | None, option: str = "timeout") -> None:
    """Refuse a ``timeout`` that is not None nor a number of seconds > 0 (ConfigError)."""

    ok = (isinstance(timeout, int | float) and not isinstance(timeout, bool)
          and math.isfinite(timeout) and timeout > 0)
    if timeout is not None and not ok:
        found = f"{timeout:g}" if isinstance(timeout, float) else repr(timeout)
        raise ConfigError(f"must be a number of seconds > 0, found {found}; give e.g. "
                          f"{_example(option, 600)}, or leave it out for no limit", entry=option)


def check_parallel(parallel: int | None, option: str = "parallel") -> None:
    """Refuse a ``parallel`` that is not None nor an integer >= 1 (ConfigError)."""

    ok = isinstance(parallel, int) and not isinstance(parallel, bool) and parallel >= 1
    if parallel is not None and not ok:
        raise ConfigError(f"must be an integer >= 1 (fits run at once), found {parallel!r}; "
                          f"give e.g. {_example(option, 1)}, or leave it out for the default",
                          entry=option)


def _example(option: str, value: object) -> str:
    """``--option value`` for a command-line option, ``option=value`` for a keyword."""
    return f"{option} {value}" if option.startswith("-") else f"{option}={value}"


@dataclass
class FitJob:
    """One fit: a name for the report, and keyword arguments for ``target``."""

    name: str
    target: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitOutcome:
    """What came back: the ``xarray.DataTree``, or the error that stopped the fit."""

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


def _worker(target, kwargs, out_nc: str, out_json: str, events: str | None = None,
            output: str | None = None) -> None:
    os.setsid()  # its own process group, so a timeout stops engine subprocesses too
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if events is not None:  # progress goes to the parent's display (crossppl.progress)
        os.environ[ENV] = events
    if output is not None:  # and what the engines print, too: the display shows it
        sys.stdout.flush()
        sys.stderr.flush()
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    start = time.perf_counter()
    result: dict[str, Any] = {}
    try:
        idata = target(**kwargs)
        save_netcdf(idata, out_nc)
        result = {"ok": True}
    except BaseException as exc:
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


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """A worker's SIGTERM handler: unwind (so that ``finally`` blocks stop what the engine
    started) once; a second SIGTERM while unwinding is ignored."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def run_fits(
    jobs: list[FitJob],
    *,
    parallel: int = 1,
    timeout: float | None = None,
    progress: Callable[[str], None] | None = None,
    display: FitProgress | None = None,
) -> dict[str, FitOutcome]:
    """Run ``jobs`` with at most ``parallel`` at once; return outcomes by job name.

    A job still running after ``timeout`` seconds is stopped (its whole process group) and
    reported as failed. Outputs travel through NetCDF files in a temporary folder that is
    removed afterwards, also when an exception (KeyboardInterrupt, :class:`Terminated`) ends
    the run: then every running worker is stopped first.

    ``progress`` gets a line when a job starts and when it ends. ``display``
    (:class:`crossppl.progress.FitProgress`) shows each job's progress as its worker reports
    it (:func:`crossppl.progress.report`), and what the worker prints, which then goes
    nowhere else.
    """
    ctx = mp.get_context("spawn")
    check_timeout(timeout)
    check_parallel(parallel)
    say = progress or (lambda _msg: None)
    outcomes: dict[str, FitOutcome] = {}
    pending = list(jobs)
    running: dict[str, tuple[Any, float, str, str]] = {}
    t0 = time.perf_counter()
    if display is not None:
        display.add([job.name for job in jobs])
    with tempfile.TemporaryDirectory(prefix="crossppl-") as tmp:
        try:
            while pending or running:
                while pending and len(running) < max(1, parallel):
                    job = pending.pop(0)
                    nc = os.path.join(tmp, f"{job.name}.nc")
                    js = os.path.join(tmp, f"{job.name}.json")
                    shown = ((os.path.join(tmp, f"{job.name}.events"),
                              os.path.join(tmp, f"{job.name}.out"))
                             if display is not None else (None, None))
                    proc = ctx.Process(target=_worker,
                                       args=(job.target, job.kwargs, nc, js, *shown),
                                       daemon=False)
                    with _sigint_ignored():  # the worker ignores SIGINT from its first instant
                        proc.start()
                    running[job.name] = (proc, time.perf_counter(), nc, js)
                    say(f"[{time.perf_counter() - t0:6.1f}s] {job.name}: started")
                    if display is not None:
                        display.started(job.name, *shown)
                time.sleep(0.2)
                if display is not None:
                    display.refresh()
                for name, (proc, started, nc, js) in list(running.items()):
                    elapsed = time.perf_counter() - started
                    finished = os.path.exists(js)
                    if proc.is_alive() and not finished and (timeout is None or elapsed < timeout):
                        continue
                    if finished:
                        proc.join(2)
                        _stop(proc)
                        outcome = _collect(name, nc, js, proc.exitcode, elapsed)
                    elif proc.is_alive():
                        _stop(proc)
                        outcome = FitOutcome(name, seconds=elapsed, error_type="Timeout",
                                             error=f"stopped after the timeout of {timeout:g} s")
                    else:
                        proc.join()
                        outcome = _collect(name, nc, js, proc.exitcode, elapsed)
                    outcomes[name] = outcome
                    del running[name]
                    state = "done" if outcome.ok else f"FAILED ({outcome.error_type})"
                    say(f"[{time.perf_counter() - t0:6.1f}s] {name}: {state} "
                        f"in {outcome.seconds:.1f} s")
                    if display is not None:
                        display.finished(name, outcome.ok, outcome.seconds, outcome.error_type)
        finally:
            _stop(*(proc for proc, *_ in running.values()))
            if display is not None:
                display.close()
    return outcomes


def _collect(name: str, nc: str, js: str, exitcode: int | None, elapsed: float) -> FitOutcome:
    if not os.path.exists(js):
        return FitOutcome(name, seconds=elapsed, error_type="Crash",
                          error=f"the fit's process died (exit code {exitcode})")
    result = json.loads(Path(js).read_text())
    if not result["ok"]:
        return FitOutcome(name, seconds=result["seconds"], error=result["error"],
                          error_type=result["error_type"])
    return FitOutcome(name, idata=load_netcdf(nc), seconds=result["seconds"])


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in the block (in the main thread), so that a worker started in it inherits
    that: a Ctrl-C is this process's to handle, and it stops the worker itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


def _stop(*procs) -> None:
    """Stop the workers ``procs``, all at once: SIGTERM to each one's process group (the worker
    itself if it has no group of its own yet), SIGKILL to what is left after :data:`GRACE`."""
    try:
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            _signal_group(proc, signal.SIGKILL)  # the process and any engine workers it left
        for proc in procs:
            proc.join()


def _signal_group(proc, signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        if proc.is_alive():  # not yet the leader of its own group (still starting)
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)


def stderr_progress(message: str) -> None:
    """Print a progress line to standard error."""
    print(message, file=sys.stderr, flush=True)
