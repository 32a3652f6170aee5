"""Fits run in their own processes: a failure, a hang or a crash is reported, others finish."""

from __future__ import annotations

import pytest

from crossppl.runner import FitJob, run_fits

from . import _jobs


@pytest.mark.slow
def test_failing_hanging_and_crashing_fits_do_not_stop_the_others():
    jobs = [
        FitJob("ok", _jobs.ok_job, {"value": 2.0}),
        FitJob("fails", _jobs.failing_job),
        FitJob("hangs", _jobs.hanging_job),
        FitJob("crashes", _jobs.crashing_job),
    ]
    messages = []
    out = run_fits(jobs, parallel=4, timeout=20, progress=messages.append)
    assert out["ok"].ok and float(out["ok"].idata.posterior["a"].mean()) > 1.5
    assert not out["fails"].ok and "the sampler exploded" in out["fails"].error
    assert "Traceback" not in out["fails"].error
    assert out["hangs"].error_type == "Timeout"
    assert out["crashes"].error_type == "Crash" and "exit code 9" in out["crashes"].error
    assert any("hangs: FAILED (Timeout)" in m for m in messages)
