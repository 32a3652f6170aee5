"""Progress of the fits of ``compare``, reported by worker processes and shown by the parent:
one line per fit redrawn in a terminal, a line per stage elsewhere with --progress, nothing
otherwise (issue 10: ``compare --help`` promised a progress bar that never appeared)."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import time

import pytest

import crossppl.runner
from crossppl.cli import main
from crossppl.progress import STAN_COMPILING, FitProgress
from crossppl.runner import FitJob, run_fits

from . import _jobs


def _events(path, *events) -> None:
    with open(path, "a") as fh:
        for stage, done, total, notice in events:
            fh.write(json.dumps({"stage": stage, "done": done, "total": total,
                                 "notice": notice}) + "\n")


def test_a_terminal_gets_one_line_per_fit_redrawn_in_place(tmp_path):
    stream = io.StringIO()
    display = FitProgress(stream, live=True)
    display.add(["stan", "pymc"])
    assert stream.getvalue() == "\r\x1b[J  stan  waiting\n  pymc  waiting\n"
    events, output = tmp_path / "stan.events", tmp_path / "stan.out"
    display.started("stan", str(events), str(output))
    _events(events, ("building the program", None, None, False),
            (STAN_COMPILING, None, None, True), ("sampling", 2000, 8000, False))
    output.write_text("a warning from the engine\nhalf a li")
    stream.seek(0)
    stream.truncate()
    display.refresh()
    frame = stream.getvalue()
    # back to the first line, erase, the messages above, then the fits' lines
    assert frame.startswith("\r\x1b[2A\x1b[J"), frame
    lines = frame[len("\r\x1b[2A\x1b[J"):].splitlines()
    assert lines[:2] == [f"stan: {STAN_COMPILING}...", "stan: a warning from the engine"]
    assert lines[2].startswith("  stan      ") and lines[2].endswith(
        " s  sampling  25% [#####               ] (2000/8000)")
    assert lines[3:] == ["  pymc  waiting"]
    stream.seek(0)
    stream.truncate()
    display.refresh()
    assert stream.getvalue() == ""  # nothing new: nothing drawn
    display.finished("stan", True, 12.34)
    assert stream.getvalue() == ("\r\x1b[2A\x1b[Jstan: half a li\n  stan  done in 12.3 s\n"
                                 "  pymc  waiting\n")


def test_elsewhere_a_line_per_stage_quarter_and_message(tmp_path):
    stream = io.StringIO()
    display = FitProgress(stream)  # a StringIO is no terminal
    assert not display.live
    display.add(["numpyro"])
    events, output = tmp_path / "n.events", tmp_path / "n.out"
    display.started("numpyro", str(events), str(output))
    _events(events, ("building the program", None, None, False),
            *(("sampling", done, 1000, False) for done in range(0, 1001, 50)))
    display.refresh()
    display.finished("numpyro", False, 3.0, "EngineError")
    said = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert said == ["numpyro: started", "numpyro: building the program",
                    "numpyro: sampling   0% (0/1000)", "numpyro: sampling  25% (250/1000)",
                    "numpyro: sampling  50% (500/1000)", "numpyro: sampling  75% (750/1000)",
                    "numpyro: sampling 100% (1000/1000)", "numpyro: FAILED (EngineError) in 3.0 s"]
    assert "\x1b" not in stream.getvalue()
    # Interrupted (Ctrl-C), a fit still running is said to be stopped.
    display.started("stan", str(tmp_path / "s.events"), str(tmp_path / "s.out"))
    display.close()
    said = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert said[-2:] == ["stan: started", "stan: stopped"]


@pytest.mark.slow
def test_workers_report_to_the_display_and_their_output_goes_there_too(capfd):
    stream = io.StringIO()
    out = run_fits([FitJob("job", _jobs.reporting_job)], display=FitProgress(stream))
    assert out["job"].ok, out["job"].error
    said = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert said[:2] == ["job: started", "job: building the program"]
    for line in ("job: a message from the engine", "job: sampling   0% (0/400)",
                 "job: sampling  50% (200/400)", "job: sampling 100% (400/400)"):
        assert line in said, said
    assert said[-1].startswith("job: done in ")
    assert capfd.readouterr().err == ""  # the worker's output reached the display only
    # Without a display a worker reports nothing (its engine shows its own progress).
    assert run_fits([FitJob("quiet", _jobs.silent_job)])["quiet"].ok


@pytest.mark.parametrize(("argv", "live"), [
    ([], None), (["--progress"], False), (["--no-progress"], None),
])
def test_compare_shows_progress_only_in_a_terminal_or_when_asked(argv, live, monkeypatch,
                                                                 capsys):
    seen = {}

    def record(jobs, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(crossppl.runner, "run_fits", record)
    assert main(["compare", "pump", "--backends", "numpyro", *argv]) == 130
    display = seen["display"]
    assert (display and display.live) == live  # capsys' stderr is no terminal
    assert seen.get("progress") is None


@pytest.mark.slow
def test_compare_in_a_terminal_redraws_a_line_per_backend(tmp_path):
    """The real command under a pseudo-terminal: NumPyro's line goes from starting to done in
    place, and the report on standard output is unchanged."""
    main_fd, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "crossppl.cli", "compare", "pump", "--backends", "numpyro",
         "--chains", "2", "--warmup", "200", "--draws", "200"],
        stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL, text=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # the command closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    out = proc.communicate(timeout=60)[0]
    os.close(main_fd)
    text = shown.decode()
    assert proc.returncode in (0, 3), text + out
    frames = text.split("\r\x1b[1A\x1b[J")  # the line redrawn in place
    states = [re.sub(r"^numpyro +(\d+ s  )?", "", frame.strip()) for frame in frames[1:]]
    assert states[0] == "starting" and states[-1].startswith("done in "), states
    # what the worker reported (stages this short may fall between two redraws)
    assert {"building the program", "sampling", "collecting the draws"} & set(states), states
    assert "crossppl compare: pump" in out and "Traceback" not in text
