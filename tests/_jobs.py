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
