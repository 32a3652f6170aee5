"""Rats (Gelfand et al. 1990), non-centred x, hand-written in PyMC as on the seed page.

Normals with precisions (``tau=``), Gamma(0.001, 0.001) hyperpriors, sigma = 1 / sqrt(tau);
coords/dims instead of the seed page's ``shape=(30, 1)``. Reference program of
``bench/rats_speed.py``; run it directly for a quick fit::

    .venv/bin/python bench/hand/rats_pymc.py [nutpie|pymc]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pymc as pm
import pytensor.tensor as pt

DATA = Path(__file__).resolve().parents[2] / "data" / "rats.data.json"


def load_data(path: Path = DATA) -> tuple[np.ndarray, np.ndarray]:
    """x (ages in days, shape (5,)) and y (weights in grams, shape (30, 5))."""
    raw = json.loads(Path(path).read_text())
    return np.asarray(raw["x"], dtype=float), np.asarray(raw["y"], dtype=float)


def build_model(x: np.ndarray, y: np.ndarray) -> pm.Model:
    """The Rats model with dims ``rat`` and ``week``."""
    coords = {"rat": np.arange(y.shape[0]), "week": x.astype(int)}
    with pm.Model(coords=coords) as model:
        mu_alpha = pm.Normal("mu_alpha", 0, tau=1e-6)
        tau_alpha = pm.Gamma("tau_alpha", 0.001, 0.001)
        mu_beta = pm.Normal("mu_beta", 0, tau=1e-6)
        tau_beta = pm.Gamma("tau_beta", 0.001, 0.001)
        tau = pm.Gamma("tau", 0.001, 0.001)
        alpha = pm.Normal("alpha", mu_alpha, tau=tau_alpha, dims="rat")
        beta = pm.Normal("beta", mu_beta, tau=tau_beta, dims="rat")
        sigma = pm.Deterministic("sigma", 1 / pt.sqrt(tau))
        mu = alpha[:, None] + beta[:, None] * x
        pm.Normal("y", mu, sigma=sigma, observed=y, dims=("rat", "week"))
    return model


def fit(
    engine: str = "nutpie",
    *,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 3000,
    seed: int = 1,
    target_accept: float = 0.8,
    max_treedepth: int = 10,
    cores: int | None = None,
) -> dict:
    """Fit with ``engine`` (``"nutpie"`` or ``"pymc"``, i.e. pm.sample's own NUTS).

    Returns ``{"idata", "build_seconds", "sampling_seconds"}``. Build: constructing the model
    (and for nutpie compiling it, ``compile_pymc_model``). Sampling: the sampler call, which for
    pm.sample includes compiling the log density and its gradient; pm.sample's draws come back as
    a MultiTrace and are converted to a DataTree after the clock stops (nutpie returns
    a DataTree itself). Chains run on ``cores`` processes/threads, default min(chains, CPUs).
    """
    import os

    x, y = load_data()
    cores = cores or max(1, min(chains, os.cpu_count() or 1))
    t0 = time.perf_counter()
    model = build_model(x, y)
    if engine == "nutpie":
        import nutpie

        compiled = nutpie.compile_pymc_model(model)
        t1 = time.perf_counter()
        idata = nutpie.sample(
            compiled,
            chains=chains,
            tune=warmup,
            draws=draws,
            seed=seed,
            target_accept=target_accept,
            maxdepth=max_treedepth,
            cores=cores,
            save_warmup=False,
            progress_bar=False,
        )
        t2 = time.perf_counter()
    elif engine == "pymc":
        t1 = time.perf_counter()
        with model:
            trace = pm.sample(
                draws=draws,
                tune=warmup,
                chains=chains,
                cores=cores,
                random_seed=seed,
                target_accept=target_accept,
                max_treedepth=max_treedepth,
                progressbar=False,
                compute_convergence_checks=False,
                return_inferencedata=False,
            )
            t2 = time.perf_counter()
            idata = pm.to_inference_data(trace)
    else:
        raise ValueError(f"unknown engine {engine!r}; choose nutpie or pymc")
    return {"idata": idata, "build_seconds": t1 - t0, "sampling_seconds": t2 - t1}


if __name__ == "__main__":
    import arviz_stats as azs

    out = fit(sys.argv[1] if len(sys.argv) > 1 else "nutpie")
    print(azs.summary(out["idata"], var_names=["~alpha", "~beta"]))
    print(f"build {out['build_seconds']:.2f} s, sampling {out['sampling_seconds']:.2f} s")
