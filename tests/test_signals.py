"""Ctrl-C and SIGTERM stop a command and everything it started, at once and without a
traceback; a command that ends leaves no process behind. The real command line is run in a
fresh process (as ``python -m`` and as the console script), with an environment mark that every
process it starts inherits, and a temporary folder of its own (scratch folders go there)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from crossppl.cli import main

#: ``python -m`` the command line.
PYTHON_M = [sys.executable, "-m", "crossppl.cli"]
#: The console script next to this interpreter (its shebang spells the interpreter otherwise).
SCRIPT = Path(sys.executable).with_name("crossppl")
#: Seconds from the signal to the command's exit that a user waits at most.
PROMPT = 5.0


def command(console_script: bool) -> list[str]:
    """The console script or ``python -m``."""
    if not console_script:
        return PYTHON_M
    if not SCRIPT.exists():
        pytest.skip(f"no console script at {SCRIPT}")
    return [str(SCRIPT)]


@contextlib.contextmanager
def _signals_at_their_defaults_in_children():
    """While a command starts, SIGINT and SIGTERM are caught here (not ignored), so the command
    starts with them at their defaults, as a shell leaves them for a foreground job: a suite
    started in the background (``make test &``) inherits SIGINT ignored, which every child
    would keep, and a Ctrl-C test would then test nothing. (No ``preexec_fn``: it makes
    subprocess fork, which JAX, imported in this process, warns against.)"""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in saved:
            signal.signal(s, lambda *_: None)
    except ValueError:  # not the main thread: leave the dispositions as they are
        yield
        return
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


class Run:
    """A command line started in a session of its own, its output in files."""

    def __init__(self, argv: list[str], folder: Path) -> None:
        self.mark = uuid.uuid4().hex
        self.tmp = Path(tempfile.mkdtemp(prefix="crossppl-test-"))  # short: sockets go there
        self.cwd = folder / "cwd"
        self.cwd.mkdir()
        self.err_path = folder / "stderr.txt"
        env = {**os.environ, "CROSSPPL_TEST_MARK": self.mark, "TMPDIR": str(self.tmp)}
        with (open(self.err_path, "w") as err, open(folder / "stdout.txt", "w") as out,
              _signals_at_their_defaults_in_children()):
            self.proc = subprocess.Popen(argv, env=env, cwd=self.cwd, stdout=out, stderr=err,
                                         start_new_session=True)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for_output(self, text: str, seconds: float = 180) -> None:
        """Wait until ``text`` appears on the command's standard error."""
        deadline = time.monotonic() + seconds
        while text not in self.stderr:
            assert self.proc.poll() is None, f"ended early ({self.proc.returncode}): {self.stderr}"
            assert time.monotonic() < deadline, f"no {text!r} after {seconds} s: {self.stderr}"
            time.sleep(0.1)

    def wait_for_scratch(self, prefix: str, seconds: float = 180) -> None:
        """Wait until a folder named ``prefix...`` appears in the command's temporary folder."""
        deadline = time.monotonic() + seconds
        while not any(p.name.startswith(prefix) for p in self.tmp.iterdir()):
            assert self.proc.poll() is None, f"ended early ({self.proc.returncode}): {self.stderr}"
            assert time.monotonic() < deadline, f"no {prefix}* after {seconds} s: {self.stderr}"
            time.sleep(0.1)

    def stop_with(self, signum: int, *, group: bool) -> tuple[int, float]:
        """Send ``signum`` (to the command's process group, as a terminal's Ctrl-C does, or to
        the command alone, as ``timeout`` does); its exit code and how long it took to exit."""
        start = time.monotonic()
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)
        try:
            code = self.proc.wait(60)
        finally:
            self.proc.kill()
        return code, time.monotonic() - start

    def leftovers(self) -> list[str]:
        """The processes still alive that this command started (its mark in their environment,
        or in its process group), and what is left in its temporary folder."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                pgid = int(stat.rsplit(")", 1)[1].split()[2])
                if pgid == self.proc.pid or self.mark.encode() in Path(
                        f"/proc/{pid}/environ").read_bytes():
                    found.append(stat[:120])
            except (OSError, ValueError, IndexError):
                pass
        return found + [path.name for path in self.tmp.iterdir()]

    def close(self) -> None:
        import shutil

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def run(tmp_path):
    """Start commands (:class:`Run`); whatever is left of them is killed afterwards."""
    runs: list[Run] = []

    def start(*argv: str) -> Run:
        folder = tmp_path / str(len(runs))
        folder.mkdir()
        runs.append(Run(list(argv), folder))
        return runs[-1]

    yield start
    for started in runs:
        started.close()


def assert_stopped(started: Run, code: int, seconds: float, want: int, line: str) -> None:
    assert code == want, started.stderr
    assert seconds < PROMPT, f"exited {seconds:.1f} s after the signal"
    assert "Traceback" not in started.stderr and "Error" not in started.stderr, started.stderr
    assert started.stderr.strip().splitlines()[-1] == line
    assert started.stderr.count(line) == 1
    deadline = time.monotonic() + 1
    while started.leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.leftovers() == []
    assert list(started.cwd.iterdir()) == []


@pytest.mark.pystan(raises=AssertionError)  # seen as an exit code or a message
@pytest.mark.slow
def test_ctrl_c_during_a_long_stan_fit_stops_it_at_once(run):
    """It used to print CancelledError tracebacks from httpstan, then hang for good."""
    started = run(*command(console_script=True), "fit", "rats", "--backend", "stan",
                  "--engine", "pystan", "--draws", "20000", "-o", "d.nc", "--progress")
    started.wait_for_output("Stan (pystan): sampling")
    time.sleep(2)
    code, seconds = started.stop_with(signal.SIGINT, group=True)
    assert_stopped(started, code, seconds, 130, "crossppl: interrupted; no output written")


@pytest.mark.slow
def test_ctrl_c_during_a_numpyro_fit_stops_it_at_once(run):
    """It used to crash (exit 139, a segfault) in 4 of 5 tries, 4-8 s in (JAX compiling or
    sampling)."""
    started = run(*command(console_script=False), "fit", "rats", "--backend", "numpyro",
                  "--draws", "200000", "-o", "d.nc")
    time.sleep(6)
    code, seconds = started.stop_with(signal.SIGINT, group=True)
    assert_stopped(started, code, seconds, 130, "crossppl: interrupted; no output written")


@pytest.mark.pystan(raises=AssertionError)  # seen as an exit code or a message
@pytest.mark.slow
def test_sigterm_to_a_stan_fit_stops_httpstan_s_samplers(run):
    """httpstan's pool workers used to be re-parented to init and live on."""
    started = run(*command(console_script=True), "fit", "rats", "--backend", "stan",
                  "--engine", "pystan", "--draws", "20000", "--progress")
    started.wait_for_output("Stan (pystan): sampling")
    time.sleep(1)
    code, seconds = started.stop_with(signal.SIGTERM, group=False)
    assert_stopped(started, code, seconds, 143, "crossppl: terminated; no output written")


@pytest.mark.slow
def test_sigterm_to_compare_stops_every_fit_and_removes_the_scratch_folder(run):
    """The fit workers (sessions of their own) used to run on orphaned, and the runner's
    crossppl-XXXX folder stayed in the temporary folder."""
    started = run(*command(console_script=False), "compare", "rats",
                  "--backends", "stan,numpyro", "--engine", "stan=pystan", "--draws", "20000",
                  "--parallel", "2")
    started.wait_for_scratch("crossppl-")  # the runner's folder: the fits are starting
    time.sleep(6)  # both sampling (or NumPyro still compiling); each takes over 30 s
    code, seconds = started.stop_with(signal.SIGTERM, group=False)
    assert_stopped(started, code, seconds, 143, "crossppl: terminated; no output written")


@pytest.mark.pystan(raises=AssertionError)  # seen as an exit code or a message
@pytest.mark.slow
def test_a_finished_compare_leaves_no_process_behind(run):
    """A harness that times whole process groups saw processes outlive the command. Run as
    the console script (whose shebang spells the interpreter .../python3.12), the log density
    of the Stan program used to crash with "`model_name` does not match `program_code`"."""
    started = run(*command(console_script=True), "compare", "pump",
                  "--backends", "stan,numpyro", "--engine", "stan=pystan", "--draws", "500")
    code = started.proc.wait(600)
    assert code == 0, started.stderr
    assert "Traceback" not in started.stderr
    assert started.leftovers() == []
    with pytest.raises(ProcessLookupError):
        os.killpg(started.proc.pid, 0)


def test_main_called_from_python_leaves_the_signal_handlers_as_they_were(capsys):
    def mine(signum, frame):  # pragma: no cover
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        before = signal.getsignal(signal.SIGINT)
        assert main(["list"]) == 0
        assert main(["compare", "rats", "--timeout", "0"]) == 2
        assert signal.getsignal(signal.SIGINT) is before
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
