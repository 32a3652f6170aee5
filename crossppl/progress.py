"""Progress of fits that run in worker processes, shown by the process that started them.

A worker of :func:`crossppl.runner.run_fits` started with a :class:`FitProgress` display finds
the path of an events file in ``$CROSSPPL_PROGRESS``; the engine code it runs (and the Stan host,
which inherits the variable) appends events to it with :func:`report`, one JSON line each:
``{"stage": "sampling", "done": 3600, "total": 8000, "notice": false}``. Whatever the worker
writes to its standard output and error goes to an output file. The parent reads both files as
they grow and draws them (:class:`FitProgress`): in a terminal, one line per fit redrawn in
place, with the workers' messages and notices printed above those lines; elsewhere, one line
per event worth a line. Without the variable, :func:`report` does nothing and returns False,
and the engines show their own progress displays (``crossppl fit``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["ENV", "FitProgress", "report", "reporting"]

#: The environment variable holding a worker's events file.
ENV = "CROSSPPL_PROGRESS"
#: Seconds between two events of one stage written by one process (the last one always goes).
MIN_INTERVAL = 0.25
#: The notice a cold Stan build reports (``crossppl fit`` prints its own).
STAN_COMPILING = "compiling the Stan program (about a minute, once)"

_last = {"stage": "", "at": 0.0}


def reporting() -> bool:
    """Whether this process reports its progress to a parent's display."""
    return bool(os.environ.get(ENV))


def report(stage: str, done: int | None = None, total: int | None = None, *,
           notice: bool = False) -> bool:
    """Report that this fit is at ``stage`` (``done`` of ``total`` iterations, if known).

    Parameters
    ----------
    stage
        What the fit does now, in a few words ("building the program", "sampling").
    done, total
        Iterations done and to do in this stage, all chains together, when known.
    notice
        Also print ``stage`` as a line of its own (a compile that takes a minute), not only on
        the fit's progress line.

    Returns
    -------
    bool
        True when a parent's display takes the report (``$CROSSPPL_PROGRESS`` is set); False
        when nobody does, so that the caller may show its own progress instead.
    """
    path = os.environ.get(ENV)
    if not path:
        return False
    now = time.monotonic()
    last = done is not None and total is not None and done >= total
    if (stage == _last["stage"] and not (last or notice)
            and now - _last["at"] < MIN_INTERVAL):
        return True
    _last.update(stage=stage, at=now)
    line = json.dumps({"stage": stage, "done": done, "total": total, "notice": notice})
    with contextlib.suppress(OSError):  # progress never stops a fit
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())  # one write: lines of two processes never mix
        finally:
            os.close(fd)
    return True


@dataclass
class _Tail:
    """The complete lines a growing file got since the last read."""

    path: str
    offset: int = 0
    rest: bytes = b""

    def lines(self, *, final: bool = False) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            chunk = b""
        self.offset += len(chunk)
        *complete, self.rest = (self.rest + chunk).split(b"\n")
        if final and self.rest:
            complete.append(self.rest)
            self.rest = b""
        # what a terminal would show of a line redrawn with carriage returns
        texts = (raw.decode(errors="replace").rstrip("\r").split("\r")[-1] for raw in complete)
        return [text.rstrip() for text in texts if text.strip()]


@dataclass
class _Fit:
    """One fit's state on the display."""

    stage: str = "waiting"
    done: int | None = None
    total: int | None = None
    started: float | None = None
    result: str = ""
    events: _Tail | None = None
    output: _Tail | None = None
    said: tuple[str, int] = ("", -1)  # line mode: the last stage and quarter printed
    notices: list[str] = field(default_factory=list)


class FitProgress:
    """Shows the progress of fits running in worker processes on ``stream``.

    In a terminal (``live``), one line per fit is redrawn in place (stage, percent done and a
    bar where the engine tells, seconds since the fit started), and the fits' notices and
    messages are printed above those lines, each after its fit's name. Elsewhere, a line is
    printed when a fit starts, changes stage, passes a quarter of its iterations, says
    something, and ends (``[  12.3s] stan: done in 12.1 s``).

    Parameters
    ----------
    stream
        Where to draw (default: standard error).
    live
        Redraw lines in place (default: whether ``stream`` is a terminal that is not
        ``TERM=dumb``).
    """

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if live is None:
            isatty = getattr(self.stream, "isatty", None)
            live = bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"
        self.live = live
        self.fits: dict[str, _Fit] = {}
        self.t0 = time.perf_counter()
        self._drawn: list[str] = []
        self._above: list[str] = []

    # -- what run_fits tells ---------------------------------------------------------------
    def add(self, names: list[str]) -> None:
        """The fits to run, in the order of their lines."""
        for name in names:
            self.fits.setdefault(name, _Fit())
        self.refresh()

    def started(self, name: str, events: str, output: str) -> None:
        """Fit ``name`` started; its worker writes ``events`` and ``output``."""
        fit = self.fits.setdefault(name, _Fit())
        fit.stage, fit.started = "starting", time.perf_counter()
        fit.events, fit.output = _Tail(events), _Tail(output)
        self._line(f"{name}: started")
        self.refresh()

    def finished(self, name: str, ok: bool, seconds: float, error_type: str = "") -> None:
        """Fit ``name`` ended (``ok``: it produced draws)."""
        fit = self.fits.setdefault(name, _Fit())
        self._read(name, fit, final=True)
        fit.result = (f"done in {seconds:.1f} s" if ok
                      else f"FAILED ({error_type}) in {seconds:.1f} s")
        self._line(f"{name}: {fit.result}")
        self.refresh()

    def refresh(self) -> None:
        """Read what the running fits wrote, and redraw."""
        for name, fit in self.fits.items():
            if fit.started is not None and not fit.result:
                self._read(name, fit)
        if self.live:
            self._draw()

    def close(self) -> None:
        """Draw the last state (every fit's line stays on the screen); a fit still running
        (the run was interrupted) is shown as stopped."""
        self.refresh()
        for name, fit in self.fits.items():
            if fit.started is not None and not fit.result:
                fit.result = "stopped"
                self._line(f"{name}: stopped")
        if self.live:
            self._draw()

    # -- reading -----------------------------------------------------------------------------
    def _read(self, name: str, fit: _Fit, *, final: bool = False) -> None:
        for text in fit.events.lines(final=final) if fit.events else []:
            try:
                event = json.loads(text)
                stage = str(event["stage"])
            except (ValueError, KeyError, TypeError):
                continue
            fit.stage, fit.done, fit.total = stage, event.get("done"), event.get("total")
            if event.get("notice"):
                fit.said = (stage, -1)
                self._message(f"{name}: {stage}...")
            elif not self.live:
                self._say_stage(name, fit)
        for text in fit.output.lines(final=final) if fit.output else []:
            self._message(f"{name}: {text}")

    def _say_stage(self, name: str, fit: _Fit) -> None:
        """Line mode: a line for a new stage, and for each quarter of its iterations."""
        quarter = (4 * fit.done // fit.total if isinstance(fit.done, int)
                   and isinstance(fit.total, int) and fit.total > 0 else -1)
        if (fit.stage, quarter) == fit.said or (fit.stage == fit.said[0] and quarter < 0):
            return
        fit.said = (fit.stage, quarter)
        self._line(f"{name}: {self._stage_text(fit)}")

    # -- drawing -----------------------------------------------------------------------------
    def _line(self, text: str) -> None:
        """Line mode: print ``text`` after the seconds since the display started."""
        if not self.live:
            self.stream.write(f"[{time.perf_counter() - self.t0:6.1f}s] {text}\n")
            self.stream.flush()

    def _message(self, text: str) -> None:
        """A line of its own: above the fits' lines in a terminal, else as :meth:`_line`."""
        if self.live:
            self._above.append(text)
        else:
            self._line(text)

    @staticmethod
    def _stage_text(fit: _Fit, bar: int = 0) -> str:
        if not (isinstance(fit.done, int) and isinstance(fit.total, int) and fit.total > 0):
            return fit.stage
        share = min(1.0, fit.done / fit.total)
        drawn = f" [{'#' * round(bar * share):<{bar}}]" if bar else ""
        return f"{fit.stage} {100 * share:3.0f}%{drawn} ({fit.done}/{fit.total})"

    def lines(self) -> list[str]:
        """The lines a terminal shows for the fits now, one per fit."""
        width = max(map(len, self.fits), default=0)
        now = time.perf_counter()
        out = []
        for name, fit in self.fits.items():
            if fit.result:
                text = fit.result
            elif fit.started is None:
                text = "waiting"
            else:
                text = f"{now - fit.started:5.0f} s  {self._stage_text(fit, bar=20)}"
            out.append(f"  {name:<{width}}  {text}")
        return out

    def _draw(self) -> None:
        columns = shutil.get_terminal_size((80, 24)).columns
        lines = [line[:columns - 1] for line in self.lines()]
        if lines == self._drawn and not self._above:
            return
        parts = [f"\r\x1b[{len(self._drawn)}A" if self._drawn else "\r", "\x1b[J"]
        parts += [f"{text}\n" for text in self._above]
        parts += [f"{line}\n" for line in lines]
        self.stream.write("".join(parts))
        self.stream.flush()
        self._drawn, self._above = lines, []
