"""The command line: commands, exit codes, and errors printed without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crossppl.cli import main

from .conftest import BACKENDS


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``crossppl`` in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "crossppl.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_list_shows_each_bundled_model_on_one_line(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("rats ") and "30 rats" in line for line in lines)


@pytest.mark.parametrize("backend", BACKENDS)
def test_emit_prints_the_program(backend, capsys):
    from crossppl import emit

    assert main(["emit", "rats", "--backend", backend]) == 0
    assert capsys.readouterr().out == emit("rats", backend)


def test_unknown_spec_is_a_clean_usage_error():
    proc = run_cli("emit", "no_such_model", "--backend", "stan")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "no_such_model" in proc.stderr and "rats" in proc.stderr


def test_broken_spec_names_file_and_line(tmp_path):
    spec = tmp_path / "broken.toml"
    spec.write_text(
        '[model]\nname = "broken"\n\n[parameters]\nmu = "normall(0, 1)"\n\n'
        '[observed]\n'
    )
    proc = run_cli("emit", str(spec), "--backend", "numpyro")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{spec}:5" in proc.stderr
    assert "unknown distribution 'normall'" in proc.stderr
    assert "did you mean 'normal'" in proc.stderr


def test_bad_fit_option_is_a_usage_error(capsys):
    assert main(["fit", "rats", "--backend", "numpyro", "--chains", "0"]) == 2
    err = capsys.readouterr().err
    assert "chains must be an integer >= 1, found 0" in err


def test_unknown_engine_is_a_usage_error(capsys):
    assert main(["fit", "rats", "--backend", "numpyro", "--engine", "gibbs"]) == 2
    assert "no engine 'gibbs'" in capsys.readouterr().err


@pytest.mark.slow
def test_fit_writes_netcdf_and_prints_summary(tmp_path):
    out = tmp_path / "out" / "rats-numpyro.nc"
    proc = run_cli(
        "fit", "rats", "--backend", "numpyro", "-o", str(out),
        "--chains", "2", "--warmup", "200", "--draws", "200", "--seed", "3",
    )
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    assert "mu_alpha" in proc.stdout and "r_hat" in proc.stdout
    assert "Traceback" not in proc.stderr
    import xarray as xr

    idata = xr.open_datatree(out)
    assert idata.posterior.attrs["backend"] == "numpyro"
    assert idata.posterior.attrs["config_seed"] == 3
    assert list(out.parent.iterdir()) == [out], "no temporary files left behind"


def test_compare_all_prints_one_line_per_bundled_model(capsys):
    from crossppl.models import bundled_specs

    # No backends: nothing is fitted, every model is inconclusive; this checks the loop and
    # its exit code without sampling (the full zoo compare is `crossppl compare --all`).
    assert main(["compare", "--all", "--backends", "none"]) == 3
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(bundled_specs())
    assert all("INCONCLUSIVE" in line for line in lines)


def test_compare_needs_a_spec_or_all(capsys):
    assert main(["compare"]) == 2
    assert "give a SPEC or --all" in capsys.readouterr().err


@pytest.mark.slow
def test_importing_crossppl_and_its_statistics_prints_nothing():
    """ArviZ, PyMC, PyTensor and JAX each have import-time notices; none reaches a user."""
    code = ("import crossppl, crossppl.compare.summary, crossppl.backends.pymc, "
            "crossppl.backends.numpyro, crossppl.backends.stan")
    quiet = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True,
                           text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
