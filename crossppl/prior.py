"""Compare the prior predictive distributions of a spec's programs across backends (no MCMC).

This is the fast conformance check of the random-number side of a translation (priors drawn
with ``_rng`` functions, generated quantities, replicated data): it takes seconds once a
program is built, and a precision given for an sd, or a rate for a scale, moves a prior by
orders of magnitude. This module runs the simulations; the statistics and the verdict are in
:mod:`crossppl.compare.prior`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import crossppl.backends as registered  # get_backend looked up at call time: tests replace it
from crossppl import runner  # run_fits looked up at call time: tests replace it
from crossppl.api import load_spec, prior_predictive
from crossppl.config import FitConfig
from crossppl.errors import ConfigError
from crossppl.models import DISTRIBUTIONS, Model

__all__ = ["PriorComparison", "compare_prior"]


@dataclass
class PriorComparison:
    """Outcome of :func:`compare_prior`.

    Attributes
    ----------
    model
        The model's name.
    verdict
        ``"match"``, ``"mismatch"`` or ``"inconclusive"`` (fewer than two backends produced
        draws, or too few usable draws).
    agreement
        The tests (:class:`crossppl.compare.prior.PriorAgreement`), None if not run.
    errors
        Backend -> why it produced no draws.
    seconds
        Backend -> wall time of its simulation (building the program included).
    """

    model: str
    verdict: str
    agreement: object | None
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        timing = ", ".join(f"{b} {s:.0f} s" for b, s in self.seconds.items())
        lines = [f"{self.model}: prior predictive {self.verdict.upper()} ({timing})"]
        if self.agreement is not None:
            usable = ", ".join(f"{b} {u:.0%}" for b, u in self.agreement.usable.items())
            if usable:
                lines.append(f"  usable draws: {usable}")
            n = len(self.agreement.tests)
            if n:
                lines.append(f"  {n} tests (KS per element, usable share), "
                             f"{int(self.agreement.tests['reject'].sum())} rejected")
            lines += [f"  {p}" for p in self.agreement.problems[:10]]
        lines += [f"  {b} produced no draws: {e.splitlines()[0]}" for b, e in self.errors.items()]
        return "\n".join(lines)


def compare_prior(
    spec: str | Path | Model,
    *,
    backends: Iterable[str] | None = None,
    draws: int = 2000,
    seed: int = 1,
    alpha: float = 0.01,
    timeout: float | None = None,
) -> PriorComparison:
    """Draw ``draws`` prior predictive draws on each backend and test that they agree.

    Each backend runs in its own process (one failing does not stop the others). Draws in which
    a value is non-finite or beyond 2^30 are left out in every backend alike (see
    :mod:`crossppl.compare.prior`).
    """
    from crossppl.compare.prior import prior_agreement, prior_verdict  # lazy: SciPy, pandas

    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be strictly between 0 and 1, found {alpha!r}",
                          entry="alpha")
    FitConfig(draws=draws, seed=seed)  # validates both (same rules as a fit), before any work
    model = load_spec(spec)
    names = list(backends) if backends is not None else list(registered.backend_names())
    for name in names:
        registered.get_backend(name)
    jobs = [runner.FitJob(name, prior_predictive,
                   {"spec": model, "backend": name, "draws": draws, "seed": seed})
            for name in names]
    outcomes = runner.run_fits(jobs, parallel=2, timeout=timeout)
    samples, errors, seconds = {}, {}, {}
    for name in names:
        out = outcomes[name]
        seconds[name] = out.seconds
        if not out.ok:
            errors[name] = out.error
            continue
        idata = out.idata
        samples[name] = {
            **{v: np.asarray(idata.prior[v].values[0]) for v in idata.prior.data_vars},
            **{v: np.asarray(idata.prior_predictive[v].values[0])
               for v in idata.prior_predictive.data_vars},
        }
    if len(samples) < 2:
        return PriorComparison(model.name, prior_verdict(None), None, errors, seconds)
    counts = [d.name for d in (*model.observed, *model.generated)
              if DISTRIBUTIONS[d.dist.name].support.kind in ("count", "bounded_count")]
    agreement = prior_agreement(samples, counts=counts, alpha=alpha)
    verdict = prior_verdict(agreement, failed=bool(errors))
    return PriorComparison(model.name, verdict, agreement, errors, seconds)
