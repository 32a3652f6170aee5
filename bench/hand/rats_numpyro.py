"""Rats (Gelfand et al. 1990), non-centred x, hand-written in NumPyro.

Normals with precisions turned into standard deviations once, Gamma(0.001, 0.001)
hyperpriors, sigma = 1 / sqrt(tau); plates for rats and weeks. Chains run in parallel on
four host CPU devices and in double precision (as Stan and PyMC compute), both set before JAX
starts, i.e. on import of this module. Reference program of ``bench/rats_speed.py``; run it
directly for a quick fit::

    .venv/bin/python bench/hand/rats_numpyro.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

numpyro.set_host_device_count(4)  # one CPU device per chain
numpyro.enable_x64()

DATA = Path(__file__).resolve().parents[2] / "data" / "rats.data.json"


def load_data(path: Path = DATA) -> tuple[np.ndarray, np.ndarray]:
    """x (ages in days, shape (5,)) and y (weights in grams, shape (30, 5))."""
    raw = json.loads(Path(path).read_text())
    return np.asarray(raw["x"], dtype=float), np.asarray(raw["y"], dtype=float)


def model(x, y):
    n_rat, n_week = y.shape
    mu_alpha = numpyro.sample("mu_alpha", dist.Normal(0.0, 1000.0))  # precision 1e-6
    tau_alpha = numpyro.sample("tau_alpha", dist.Gamma(0.001, 0.001))
    mu_beta = numpyro.sample("mu_beta", dist.Normal(0.0, 1000.0))
    tau_beta = numpyro.sample("tau_beta", dist.Gamma(0.001, 0.001))
    tau = numpyro.sample("tau", dist.Gamma(0.001, 0.001))
    with numpyro.plate("rat", n_rat):
        alpha = numpyro.sample("alpha", dist.Normal(mu_alpha, jax.lax.rsqrt(tau_alpha)))
        beta = numpyro.sample("beta", dist.Normal(mu_beta, jax.lax.rsqrt(tau_beta)))
    sigma = numpyro.deterministic("sigma", jax.lax.rsqrt(tau))
    mu = alpha[:, None] + beta[:, None] * x
    with numpyro.plate("rats", n_rat, dim=-2), numpyro.plate("week", n_week, dim=-1):
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)


def fit(
    *,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 3000,
    seed: int = 1,
    target_accept: float = 0.8,
    max_treedepth: int = 10,
    chain_method: str = "parallel",
) -> dict:
    """Fit with NumPyro's NUTS.

    Returns ``{"samples", "sample_stats", "build_seconds", "sampling_seconds"}``; samples
    and stats have shape ``(chain, draw, ...)``. JAX traces and compiles inside ``MCMC.run``,
    so build time is only setting up the kernel, and sampling time is the whole ``MCMC.run``
    (compilation included) up to the draws being back on the host.
    """
    x, y = load_data()
    x, y = jnp.asarray(x), jnp.asarray(y)
    t0 = time.perf_counter()
    kernel = NUTS(model, target_accept_prob=target_accept, max_tree_depth=max_treedepth)
    mcmc = MCMC(
        kernel,
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method=chain_method,
        progress_bar=False,
    )
    t1 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), x, y, extra_fields=("diverging", "num_steps"))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    t2 = time.perf_counter()
    stats = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    return {
        "samples": samples,
        "sample_stats": stats,
        "build_seconds": t1 - t0,
        "sampling_seconds": t2 - t1,
    }


if __name__ == "__main__":
    import arviz_stats as azs
    from arviz_base import from_dict

    out = fit()
    print(azs.summary(from_dict({"posterior": out["samples"]}), var_names=["~alpha", "~beta"]))
    print(f"build {out['build_seconds']:.2f} s, sampling {out['sampling_seconds']:.2f} s")
