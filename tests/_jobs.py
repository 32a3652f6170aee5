"""Importable job targets for the runner tests (spawned processes must import them)."""

from __future__ import annotations

import os
import time


def ok_job(value: float = 1.0):
    import numpy as np
    from arviz_base import from_dict

    rng = np.random.default_rng(0)
    return from_dict({"posterior": {"a": value + rng.normal(size=(2, 50))}})


def failing_job():
    from crossppl.errors import EngineError

    raise EngineError("fake", "fake-engine", "the sampler exploded")


def hanging_job():
    time.sleep(600)


def crashing_job():
    os._exit(9)


def reporting_job():
    """Reports its stages as an engine does, and says something on standard error."""
    import sys

    from crossppl.progress import report

    report("building the program")
    print("a message from the engine", file=sys.stderr, flush=True)
    for done in range(0, 401, 100):
        report("sampling", done, 400)
        time.sleep(0.3)
    return ok_job()


def silent_job():
    """Fails when it would report to a display: none was asked for."""
    from crossppl.errors import EngineError
    from crossppl.progress import report

    if report("sampling", 0, 10):
        raise EngineError("fake", "fake-engine", "progress was reported without a display")
    return ok_job()
