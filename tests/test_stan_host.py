"""PyStan's engine runs httpstan in a Stan host process of its own for each call: nothing is
written outside the cache (a cold build's ``./build/temp.*`` stays in the host's scratch
folder), no process outlives the call, errors come back intact and short, and the calling
process never imports httpstan."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from crossppl.backends.stan.engines import (
    HOST_SCRATCH_PREFIX,
    PyStanEngine,
    StancError,
    _error_text,
    host_python,
)

from crossppl.config import FitConfig
from crossppl.errors import ConfigError, EngineError, NotYetTranslated, SpecError

#: A program every initialization of which is rejected (so sampling fails in every chain).
REJECTING = ('// crossppl: the Stan host test\nparameters { real x; }\n'
             'model { reject("crossppl test: rejected at x = ", x); }\n')


def marked_processes(mark: str) -> list[str]:
    """Command lines of the live processes whose environment holds ``mark``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if mark.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                             .decode(errors="replace"))
        except OSError:
            pass
    return found


def wait_for(condition, seconds: float) -> bool:
    """Whether ``condition()`` holds within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def isolated(monkeypatch):
    """An environment mark that every process started from here inherits, and a temporary
    folder of the test's own (short: httpstan binds sockets there), whose path is yielded too."""
    import shutil
    import tempfile

    mark = uuid.uuid4().hex
    tmp = Path(tempfile.mkdtemp(prefix="crossppl-test-"))
    monkeypatch.setenv("CROSSPPL_TEST_MARK", mark)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR read afresh
    yield mark, tmp
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("error", [
    EngineError("stan", "pystan", "sampling failed"),
    StancError("Syntax error in line 3", 3),
    SpecError("unknown name 'x'", file="m.toml", entry="[observed] y", line=4),
    ConfigError("must be >= 1, found 0", entry="chains"),
    NotYetTranslated("stan", "the IR node Foo", "file an issue"),
])
def test_crossppl_errors_cross_process_boundaries_intact(error):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error)
    assert back.__dict__ == error.__dict__


def test_an_httpstan_failure_is_reported_by_its_last_meaningful_lines():
    """httpstan appends Python's whole traceback to an error as one line (3 kB); the message
    keeps Stan's own sentences, one a line, without the traceback nor temporary paths."""
    frames = [f'  File "/venv/lib/python3.12/site-packages/httpstan/mod{i}.py", line {i}, in f\\n'
              f"    call_{i}()\\n" for i in range(30)]
    message = (
        "Exception during call to services function: `RuntimeError(\"Initialization between "
        "(-2, 2) failed after 100 attempts. Try specifying initial values, reducing ranges of "
        "constrained values, or reparameterizing the model. Initialization failed. Rejecting "
        "initial value: Error evaluating the log probability at the initial value. Exception: "
        "normal_lpdf: Scale parameter is 0, but must be positive! (in "
        "'/tmp/httpstan_a1b2/model_xyz.stan', line 5, column 2 to column 30) Rejecting initial "
        f"value:\")`, traceback: `{frames!r}`"
    )
    raw = json.dumps({"code": 400, "status": "Bad Request", "message": message})
    assert len(raw) > 3000
    text = _error_text(raw.encode())
    assert text.splitlines() == [
        "Initialization between (-2, 2) failed after 100 attempts.",
        "Try specifying initial values, reducing ranges of constrained values, or "
        "reparameterizing the model.",
        "Initialization failed.",
        "Rejecting initial value: Error evaluating the log probability at the initial value.",
        "Exception: normal_lpdf: Scale parameter is 0, but must be positive! "
        "(line 5 of the program)",
    ]
    other = json.dumps({"message": "Exception while building model extension module: "
                        "`CompileError(\"command '/usr/bin/g++' failed with exit code 1\")`, "
                        f"traceback: `{frames!r}`"})
    assert _error_text(other) == "CompileError: command '/usr/bin/g++' failed with exit code 1"


@pytest.mark.pystan(raises=AssertionError)  # seen as an exit code or a message
@pytest.mark.slow
def test_a_cold_build_and_a_failed_fit_leave_nothing_behind(isolated, tmp_path, monkeypatch):
    """A cold build (the program is removed from httpstan's cache first) run from a folder
    writes nothing there (setuptools' ./build/temp.* stays in the host's scratch folder, which
    is removed); a fit whose every chain fails reports Stan's reason in a few short lines; no
    process of the host is left, and the calling process never imports httpstan."""
    mark, tmp = isolated
    name = subprocess.run([host_python(), "-c", "import sys, httpstan.models; print(httpstan."
                           "models.calculate_model_name(sys.stdin.read()))"],
                          input=REJECTING, capture_output=True, text=True, check=True).stdout
    subprocess.run([host_python(), "-c", "import sys, httpstan.cache; "
                    "httpstan.cache.delete_model_directory(sys.argv[1])", name.strip()],
                   check=True)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(EngineError) as failed:
        PyStanEngine().sample(REJECTING, {}, FitConfig(chains=2, warmup=20, draws=20))
    text = str(failed.value)
    assert text.startswith("stan (pystan): sampling failed in all 2 chains: Initialization "
                           "between (-2, 2) failed after 100 attempts.")
    assert "Exception: crossppl test: rejected at x = " in text
    assert "(line 3 of the program)" in text
    assert "traceback" not in text.lower() and "httpstan_" not in text
    assert len(text) < 800 and max(map(len, text.splitlines())) < 200
    assert list(cwd.iterdir()) == []
    assert [p.name for p in tmp.iterdir() if not p.name.startswith("pytest-of-")] == []
    assert marked_processes(mark) == []
    code = ("import sys\nfrom crossppl.backends.stan.engines import PyStanEngine\n"
            f"built = PyStanEngine().build({REJECTING!r}, {{}})\n"
            "assert built.cached and built.params[0]['name'] == 'x'\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpstan', 'stan')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.pystan(raises=AssertionError)  # seen as an exit code or a message
@pytest.mark.slow
def test_a_stan_host_whose_caller_is_killed_stops_itself(isolated):
    """SIGKILL to the caller leaves it no chance to stop its Stan host: the host notices that
    its parent is gone, removes its scratch folder and ends its process group (httpstan's
    sampler pool included)."""
    mark, tmp = isolated
    code = ("from crossppl.backends.stan import StanBackend\n"
            "from crossppl.config import FitConfig\n"
            "from crossppl.models import load_spec\n"
            "model = load_spec('pump')\n"
            "backend = StanBackend()\n"
            "backend.sample(model, backend.emit(model), "
            "FitConfig(chains=2, warmup=1000, draws=2_000_000), 'pystan')\n")
    caller = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        samplers = lambda: len(marked_processes(mark)) >= 4  # noqa: E731  (caller, host, pool)
        assert wait_for(samplers, 120), caller.poll() is not None and caller.stderr.read()
        scratch = list(tmp.iterdir())
        assert [p.name[:len(HOST_SCRATCH_PREFIX)] for p in scratch] == [HOST_SCRATCH_PREFIX]
        caller.send_signal(signal.SIGKILL)
        caller.wait()
        assert wait_for(lambda: not marked_processes(mark), 5), marked_processes(mark)
        assert not scratch[0].exists()
    finally:
        caller.kill()
        caller.wait()
