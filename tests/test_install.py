"""The install path of a new user: a fresh venv, a plain ``pip install`` of the checkout, and the
console script that pip writes (its shebang spells the interpreter as pip does, e.g.
``.../bin/python3.12``, not as ``python -m`` or pytest do).

Slow (one to two minutes: pip installs crossppl[stan] and its dependencies from the package
index, then httpstan builds the Stan program for the new interpreter).
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the checkout installed by its own pip; returns its bin folder."""
    root = tmp_path_factory.mktemp("fresh")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)  # what `python3 -m venv` does
    bin_dir = env_dir / "bin"
    proc = subprocess.run(
        [str(bin_dir / "pip"), "install", "--quiet", f"{REPO}[stan]"],
        capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return bin_dir


def test_pip_writes_a_console_script_that_does_not_spell_the_interpreter_as_python(installed):
    shebang = (installed / "crossppl").read_text().splitlines()[0]
    assert shebang.startswith(f"#!{installed}/python") and shebang != f"#!{installed}/python"


@pytest.mark.pystan(raises=AssertionError)  # seen as an exit code or a message
def test_the_installed_console_script_compares_a_stan_program(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["CROSSPPL_CACHE_DIR"] = str(tmp_path / "cache")
    work = tmp_path / "work"
    work.mkdir()
    # a first fit through `python -m crossppl` (cold build) gives the reference draws ...
    fit = subprocess.run(
        [str(installed / "python"), "-m", "crossppl", "fit", "pump", "--backend", "stan",
         "--no-progress", "-o", str(tmp_path / "ref.nc")],
        cwd=work, capture_output=True, text=True, timeout=900, env=env,
    )
    assert fit.returncode == 0, fit.stdout[-3000:] + fit.stderr[-3000:]
    # ... then the console script fits again (the log-density check, where the crash was,
    # runs in it) and compares with them
    proc = subprocess.run(
        [str(installed / "crossppl"), "compare", "pump", "--backends", "stan", "--seed", "2",
         "--reference", str(tmp_path / "ref.nc"), "--no-progress"],
        cwd=work, capture_output=True, text=True, timeout=900, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "VERDICT: MATCH" in proc.stdout and "log density" not in proc.stderr
    assert "Traceback" not in proc.stderr
    # and from Python
    code = ("import crossppl; r = crossppl.compare('pump', backends=['stan'], seed=3, "
            f"reference={str(tmp_path / 'ref.nc')!r}); print(r.verdict.kind)")
    api = subprocess.run([str(installed / "python"), "-c", code], cwd=work,
                         capture_output=True, text=True, timeout=900, env=env)
    assert api.returncode == 0 and api.stdout.strip() == "match", api.stderr[-3000:]
    # a cold Stan build writes nothing into the folder the user ran from
    assert list(work.iterdir()) == []
