"""Options checked before any work: output paths (a folder, a path under a file, an unwritable
folder, an existing file without --force), --timeout, --parallel and the plain values
(--backends, --draws, --alpha, --engine, ...), these before any PPL is imported; output files are
created with the mode the user's umask gives."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import crossppl.runner
from crossppl.cli import main


@pytest.fixture
def no_fits(monkeypatch):
    """Fail the test if any fit starts."""

    def refuse(*args, **kwargs):
        raise AssertionError("a fit started")

    monkeypatch.setattr(crossppl.runner, "run_fits", refuse)


@pytest.mark.parametrize(("argv", "found"), [
    (["compare", "rats", "--timeout", "-1"], "found -1;"),
    (["compare", "rats", "--timeout", "0"], "found 0;"),
    (["compare", "rats", "--timeout", "nan"], "found nan;"),
    (["compare", "--all", "--timeout", "inf"], "found inf;"),
    (["prior", "rats", "--timeout", "0"], "found 0;"),
])
def test_a_timeout_that_is_not_a_positive_number_is_refused(argv, found, no_fits, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("crossppl: error: --timeout: must be a number of seconds > 0")
    assert found in err and "--timeout 600" in err and "Traceback" not in err


def test_parallel_0_is_refused(no_fits, capsys):
    assert main(["compare", "rats", "--parallel", "0"]) == 2
    err = capsys.readouterr().err
    assert "--parallel: must be an integer >= 1" in err and "found 0" in err


def test_run_fits_refuses_them_from_python_too():
    from crossppl.errors import ConfigError

    with pytest.raises(ConfigError, match=r"timeout: .* found -5;"):
        crossppl.runner.run_fits([], timeout=-5)
    with pytest.raises(ConfigError, match=r"parallel: .* found 0"):
        crossppl.runner.run_fits([], parallel=0)


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write in (root writes anywhere but in /proc)."""
    if os.geteuid() == 0:
        return Path("/proc/crossppl-test")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("command", [
    ["fit", "rats", "--backend", "numpyro", "-o"],
    ["compare", "rats", "--json"],
    ["compare", "rats", "--html"],
    ["compare", "rats", "--save-reference"],
    ["emit", "rats", "--backend", "stan", "-o"],
])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(command, tmp_path, no_fits,
                                                                    capsys):
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("keep me")
    cases = {
        tmp_path: "found the folder",
        a_file / "out.nc": "is a file, not a folder",
        unwritable_folder(tmp_path) / "sub" / "out.nc": "is not writable",
        a_file: "exists; pass --force to overwrite it",
    }
    for path, why in cases.items():
        assert main([*command, str(path)]) == 2, path
        err = capsys.readouterr().err
        assert err.startswith("crossppl: error: --") and why in err, err
        assert str(path) in err
    assert a_file.read_text() == "keep me"


def test_compare_all_checks_its_out_dir(tmp_path, no_fits, capsys):
    (tmp_path / "rats.json").write_text("{}")
    assert main(["compare", "--all", "--out-dir", str(tmp_path)]) == 2
    assert "rats.json' exists; pass --force" in capsys.readouterr().err
    assert main(["compare", "--all", "--out-dir", str(tmp_path / "rats.json")]) == 2
    assert "found the file" in capsys.readouterr().err


def test_emit_overwrites_only_with_force(tmp_path, capsys):
    out = tmp_path / "rats.stan"
    out.write_text("old")
    assert main(["emit", "rats", "--backend", "stan", "-o", str(out)]) == 2
    assert out.read_text() == "old"
    assert main(["emit", "rats", "--backend", "stan", "-o", str(out), "--force"]) == 0
    assert "model {" in out.read_text()


def test_help_says_that_existing_outputs_need_force(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    assert "--force" in capsys.readouterr().out


def test_netcdf_output_gets_the_mode_of_the_umask(tmp_path):
    """A temporary file (mkstemp: 0600) renamed into place used to keep its 0600."""
    from arviz_base import from_dict

    from crossppl.api import save_netcdf

    data = from_dict({"posterior": {"a": np.zeros((1, 5))}})
    for umask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        old = os.umask(umask)
        try:
            path = save_netcdf(data, tmp_path / f"out-{umask:o}.nc")
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == mode


@pytest.mark.pystan(raises=AssertionError)  # seen as an exit code or a message
@pytest.mark.slow
def test_fit_refuses_to_overwrite_without_force(tmp_path):
    """The real command line: -o onto an existing file is refused before fitting (exit 2), and
    replaced with --force; the file gets the mode of the user's umask."""
    out = tmp_path / "pump.nc"
    out.write_bytes(b"not a netcdf file")
    argv = [sys.executable, "-m", "crossppl.cli", "fit", "pump", "--backend", "stan",
            "--engine", "pystan", "--chains", "2", "--warmup", "100", "--draws", "100",
            "-o", str(out)]
    refused = subprocess.run(argv, capture_output=True, text=True, timeout=600, umask=0o027)
    assert refused.returncode == 2, refused.stderr
    assert "exists; pass --force" in refused.stderr and "Traceback" not in refused.stderr
    assert out.read_bytes() == b"not a netcdf file"
    done = subprocess.run([*argv, "--force"], capture_output=True, text=True, timeout=600,
                          umask=0o027)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:4] == b"\x89HDF"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pump.nc"]


def test_a_netcdf_output_in_a_folder_that_is_not_utf8_is_refused_before_any_work(
        tmp_path, no_fits, capsys):
    """The netCDF library opens only UTF-8 paths: found after the fit as a UnicodeEncodeError
    traceback; now refused first (exit 2)."""
    folder = os.fsencode(tmp_path) + b"/o\xff"
    os.mkdir(folder)
    out = os.fsdecode(folder + b"/p.nc")
    assert main(["fit", "pump", "--backend", "numpyro", "-o", out]) == 2
    err = capsys.readouterr().err
    assert "--output" in err and "o\\xff" in err and "UTF-8" in err and "Traceback" not in err


#: Imported by a fit or the statistics (seconds of imports), never by a refused option value.
HEAVY = ("scipy", "pandas", "xarray", "arviz_base", "arviz_stats", "pymc", "pytensor", "jax",
         "numpyro", "nutpie", "httpstan", "stan", "cmdstanpy", "pyjags")


@pytest.mark.parametrize(("argv", "expected"), [
    (["compare", "rats", "--backends", "nope"],
     "--backends: unknown backend 'nope' in 'nope'; give one or more of stan, pymc, numpyro, "
     "jags, comma-separated (e.g. --backends stan,pymc), or 'none'"),
    (["compare", "rats", "--backends", "stan,numpy"], "unknown backend 'numpy' in 'stan,numpy'"),
    (["compare", "rats", "--backends", "stan,stan"],
     "--backends: 'stan' is named twice in 'stan,stan'; name each backend once"),
    (["compare", "rats", "--backends", ","], "--backends: found ','; give one or more of"),
    (["compare", "rats", "--draws", "0"],
     "--draws: draws must be an integer >= 1, found 0; give e.g. --draws 1000"),
    (["compare", "--all", "--chains", "-1"], "--chains: chains must be an integer >= 1, found -1"),
    (["compare", "rats", "--seed", "-1"], "--seed: seed must be an integer in [0, 2**31)"),
    (["compare", "rats", "--target-accept", "1.5"],
     "--target-accept: target_accept must be strictly between 0 and 1, found 1.5; give e.g."),
    (["compare", "rats", "--alpha", "2"],
     "--alpha: must be strictly between 0 and 1 (a family-wise false-alarm rate), found 2; "
     "give e.g. --alpha 0.05"),
    (["compare", "rats", "--engine", "stan=gibbs"],
     "--engine: the stan backend has no engine 'gibbs' (found stan=gibbs); choose one of "
     "cmdstanpy, pystan"),
    (["compare", "rats", "--engine", "stna=pystan"], "--engine: found stna=pystan, but 'stna' "
     "is not a backend"),
    (["prior", "rats", "--backends", "none"], "--backends: unknown backend 'none' in 'none'"),
    (["prior", "rats", "--draws", "0"], "--draws: draws must be an integer >= 1, found 0"),
    (["prior", "rats", "--alpha", "0"], "found 0; give e.g. --alpha 0.01"),
    (["fit", "rats", "--backend", "pymc", "--warmup", "-3"],
     "--warmup: warmup must be an integer >= 0, found -3; give e.g. --warmup 1000"),
])
def test_a_bad_plain_value_is_refused_before_any_ppl_is_imported(argv, expected):
    """A bad --backends or --draws used to be refused after 3-7 s of imports (SciPy, pandas,
    ArviZ; a wrong --engine after every other backend's fit, exit 3): now at once, exit 2, with
    the option, the value found and the fix."""
    code = ("import sys\nfrom crossppl.cli import main\ncode = main(sys.argv[1:])\n"
            f"print(code, sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.split(maxsplit=1) == ["2", "[]\n"], proc.stdout + proc.stderr
    assert proc.stderr.startswith("crossppl: error: --") and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_compare_from_python_refuses_bad_values_before_the_statistics_are_imported():
    code = ("import sys\nfrom crossppl import compare\nfrom crossppl.errors import ConfigError\n"
            "for kw in ({'backends': ['stan', 'nope']}, {'backends': ['stan', 'stan']},\n"
            "           {'engines': {'stan': 'gibbs'}}, {'engines': {'x': 'pystan'}},\n"
            "           {'draws': 0}, {'alpha': 1.0}):\n"
            "    try:\n        compare('rats', **kw)\n"
            "    except ConfigError as exc:\n        print(exc)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    lines = proc.stdout.splitlines()
    assert len(lines) == 7 and lines[-1] == "[]", proc.stdout + proc.stderr
    assert "unknown backend 'nope'" in lines[0] and "'stan' is named twice" in lines[1]
    assert "no engine 'gibbs'" in lines[2] and "neither a backend" in lines[3]
    assert "draws must be" in lines[4] and "alpha must be" in lines[5]
