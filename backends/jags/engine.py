"""Running a JAGS program with PyJAGS: Gibbs sampling, forward simulation, log densities.

How :class:`~crossppl.config.FitConfig` maps to JAGS (a Gibbs sampler: no step size, no tree
depth, no divergences):

* ``chains`` -> JAGS chains (run one after another in one process; a Rats fit takes seconds).
* ``warmup`` -> an adaptation phase of ``min(warmup, MAX_ADAPT)`` iterations (JAGS tunes its
  adaptive samplers there; a model of conjugate samplers alone, such as Rats, has none and skips
  it), then a burn-in of ``GIBBS_MULTIPLIER * warmup`` iterations, discarded.
* ``draws`` -> ``GIBBS_MULTIPLIER * draws`` iterations thinned by ``GIBBS_MULTIPLIER``, so that
  ``draws`` are kept per chain, as every backend returns.

:data:`GIBBS_MULTIPLIER` is 10 because Gibbs draws of hierarchical models are far more
autocorrelated than NUTS draws, the chains start far out (Stan-like initial values), and the
comparison's diagnostics gate asks the same of every source (R-hat <= 1.01, bulk and tail ESS
>= 100 per chain). Measured on Rats, 4 chains x 1000 kept draws, seeds 1 and 2 (JAGS 4.3
through PyJAGS 2.4; z: the mean's distance from the seed page's in Monte Carlo errors):

=========  ====  ===============  ======  =================================  ===========
burn-in    thin  bulk ESS min     R-hat   worst mean (z)                     sampling
=========  ====  ===============  ======  =================================  ===========
0          1     381 / 7          1.51    sigma 13.58 (+44), seed 2          0.2 s
1000       1     537 / 474        1.012   sigma 6.267 (+5.6), seed 2         0.2 s
1000       5     2043 / 1956      1.002   sigma 6.174 (+2.0)                 0.5 s
1000       10    2908 / 2930      1.001   mu_alpha 106.62 (+1.0)             0.7 s
10000      10    2947 / 2994      1.002   sigma 6.165 (+1.1)                 1.0-1.2 s
20000      20    3557 / 3545      1.001   mu_alpha 106.53 (-1.3)             1.9-2.4 s
=========  ====  ===============  ======  =================================  ===========

So the warmup of 1000 taken as a plain burn-in (the first rows) fails the gate or biases the
means; ten times it, with draws thinned by ten, passes with ESS close to NUTS's (about 3000 of
4000) in about a second. Adaptation alone is no burn-in: Rats has only conjugate samplers,
which JAGS does not adapt, so its adaptation phase is empty.

* ``seed`` -> each chain's JAGS random number generator: chain ``c`` uses JAGS's
  ``base::`` generator ``c mod 4`` (Wichmann-Hill, Marsaglia-Multicarry, Super-Duper,
  Mersenne-Twister, as JAGS itself assigns them) with ``.RNG.seed`` drawn from
  ``numpy.random.SeedSequence(seed)``'s ``c``-th child, so a seed gives the same draws again.
* ``init`` ``"uniform"`` -> initial values drawn as Stan draws them: every parameter's
  unconstrained value uniform on (-2, 2), mapped to its support (``exp`` for positive,
  ``inv_logit`` for unit, ``lower + (upper - lower) inv_logit`` for an interval with constant
  bounds), with a generator of its own from the same seed; a parameter whose bounds are not
  constants is left to JAGS. ``"engine"`` -> JAGS's own initial values (a typical value of
  each prior, the same in every chain).
* ``target_accept``, ``max_treedepth`` -> nothing: they are NUTS settings, and reports say so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossppl.errors import EngineError
from crossppl.progress import report

__all__ = ["GIBBS_MULTIPLIER", "MAX_ADAPT", "RNG_NAMES", "JagsRun", "chain_rngs", "compiled",
           "forward",
           "run"]

#: Burn-in and kept iterations per warmup and per draw (kept draws are thinned by it).
GIBBS_MULTIPLIER = 10
#: Most adaptation iterations (JAGS's default ``n.adapt`` is 1000).
MAX_ADAPT = 1000
#: JAGS's base generators, which JAGS itself gives chains 1-4 in turn.
RNG_NAMES = ("base::Wichmann-Hill", "base::Marsaglia-Multicarry", "base::Super-Duper",
             "base::Mersenne-Twister")
#: Iterations between progress reports (all chains advance together).
_CHUNK = 2000

log = logging.getLogger("crossppl.jags")


@dataclass(frozen=True, slots=True)
class JagsRun:
    """What to run: ``adapt`` adaptation, ``burn_in`` discarded, then ``iterations`` monitored
    iterations thinned by ``thin``."""

    chains: int
    adapt: int
    burn_in: int
    iterations: int
    thin: int = 1


def chain_rngs(seed: int, chains: int) -> list[dict[str, Any]]:
    """Each chain's ``.RNG.name`` and ``.RNG.seed`` from ``seed`` (see the module docstring)."""
    children = np.random.SeedSequence(seed).spawn(chains)
    return [{".RNG.name": RNG_NAMES[c % len(RNG_NAMES)],
             ".RNG.seed": int(child.generate_state(1)[0] % 2**31)}
            for c, child in enumerate(children)]


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send what JAGS's C++ code prints to standard output (module loading, compiling,
    initializing) to standard error, where messages belong, for the block."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real file descriptor (a captured stream)
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _error(stage: str, exc: Exception, label: str) -> EngineError:
    text = " ".join(str(exc).split())
    return EngineError("jags", "pyjags", f"JAGS failed while {stage} {label}: {text}")


def _pyjags():
    """The ``pyjags`` module (its first import takes seconds: it imports ArviZ)."""
    try:
        import pyjags
    except ModuleNotFoundError:  # pragma: no cover - get_backend catches the import first
        raise EngineError("jags", "pyjags", "needs the package 'pyjags', which is not "
                          "installed; install it with: pip install 'crossppl[jags]'") from None
    return pyjags


def _compile(program: str, data: Mapping[str, np.ndarray], inits: Sequence[Mapping[str, Any]],
             chains: int, label: str):
    """``program`` compiled and initialized by PyJAGS (no adaptation yet)."""
    pyjags = _pyjags()
    report("building the program")
    try:
        with _quiet_stdout():
            return pyjags.Model(code=program, data=dict(data), init=[dict(i) for i in inits],
                                chains=chains, adapt=0, progress_bar=False)
    except Exception as exc:  # pyjags raises JagsError, ValueError or RuntimeError
        raise _error("compiling", exc, label) from None


def compiled(program: str, data: Mapping[str, np.ndarray], inits: Sequence[Mapping[str, Any]],
             label: str):
    """``program`` compiled by PyJAGS with one chain per entry of ``inits`` (a
    ``pyjags.Model``, not adapted), for reading what it declares."""
    return _compile(program, data, inits, len(inits), label)


def _draws(samples: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """PyJAGS's ``(*dims, draw, chain)`` draws of ``name`` as ``(chain, draw, *dims)``
    (a scalar keeps JAGS's one dim of size 1), masked values as NaN."""
    arr = np.asarray(np.ma.filled(samples[name], np.nan), dtype=float)
    return np.moveaxis(arr, (-1, -2), (0, 1))


def forward(program: str, data: Mapping[str, np.ndarray], monitors: Sequence[str], draws: int,
            inits: Mapping[str, Any], *, label: str = "the program"
            ) -> tuple[dict[str, np.ndarray], int, str]:
    """``draws`` forward simulations of ``program`` (one chain, no adaptation nor burn-in):
    each monitor shaped ``(draws, *dims)``, the number of draws JAGS could not compute, and
    JAGS's message for the first of them.

    ``data`` must leave every stochastic node unobserved: JAGS then assigns no sampler and
    draws each node from its distribution given its parents, independently every iteration
    (checked: a sampler is an :class:`EngineError`). An iteration JAGS cannot compute
    ("Invalid parent values", as for ``1 / sqrt(tau)`` of a Gamma(0.001, 0.001) ``tau`` that
    underflowed to 0) is NaN in every monitor, as Stan writes such a draw; the next one is
    drawn afresh. Iterations run one at a time for that (about 1 ms each for Rats).
    """
    from pyjags.console import JagsError

    model = _compile(program, data, [inits], 1, label)
    if model.samplers:
        nodes = ", ".join(s[-1] for s in model.samplers[:3])
        raise EngineError("jags", "pyjags", f"{label} is not forward simulation: JAGS "
                          f"assigned samplers to {nodes}; leave every observed variable out "
                          "of its data")
    rows: list[dict[str, np.ndarray] | None] = []
    failed, first = 0, ""
    with _quiet_stdout():
        for k in range(draws):
            try:
                one = model.sample(1, vars=list(monitors))
            except JagsError as exc:
                failed += 1
                first = first or " ".join(str(exc).split())
                rows.append(None)
            else:
                rows.append({name: _draws(one, name)[0, 0] for name in monitors})
            if (k + 1) % _CHUNK == 0 or k + 1 == draws:
                report("sampling", k + 1, draws)
    shapes = {name: next((r[name].shape for r in rows if r is not None), None)
              for name in monitors}
    out = {}
    for name in monitors:
        shape = shapes[name]
        if shape is None:  # every draw failed: JAGS's shape is unknown, the caller's is not
            out[name] = np.full((draws, 1), np.nan)
            continue
        out[name] = np.stack([r[name] if r is not None else np.full(shape, np.nan)
                              for r in rows])
    return out, failed, first


def run(program: str, data: Mapping[str, np.ndarray], monitors: Sequence[str], plan: JagsRun,
        inits: Sequence[Mapping[str, Any]], *, label: str = "the program",
        progress: bool = False) -> tuple[dict[str, np.ndarray], float, float]:
    """Compile ``program`` with ``data``, run ``plan`` from ``inits`` (one mapping per chain,
    holding the RNG settings and any initial values) and return the ``monitors``' draws, each
    shaped ``(chain, draw, *dims)``, with the seconds spent building and sampling.

    JAGS's errors (a program it does not parse, initial values outside a support, an invalid
    parent value) are :class:`EngineError` naming ``label``.
    """
    _pyjags()  # imported before the clock starts: build_seconds is JAGS's compile alone
    t0 = time.perf_counter()
    model = _compile(program, data, inits, plan.chains, label)
    built = time.perf_counter()
    total = plan.adapt + plan.burn_in + plan.iterations
    done = 0

    def advance(stage: str, n: int, step) -> None:
        nonlocal done
        left = n
        while left > 0:
            k = min(_CHUNK, left)
            step(k)
            left -= k
            done += k
            if not report(stage, done * plan.chains, total * plan.chains) and progress:
                print(f"jags: {stage} {done}/{total}", file=sys.stderr, flush=True)

    try:
        with _quiet_stdout():
            if plan.adapt and model.console.isAdapting():
                advance("adapting", plan.adapt, model.adapt)
            if model.console.isAdapting():  # adaptive samplers are fixed before any kept draw
                model.console.adaptOff()
            if plan.burn_in:
                advance("warmup", plan.burn_in, model.update)
            report("sampling", done * plan.chains, total * plan.chains)
            samples = model.sample(plan.iterations, vars=list(monitors), thin=plan.thin)
    except Exception as exc:
        raise _error("sampling", exc, label) from None
    report("sampling", total * plan.chains, total * plan.chains)
    finished = time.perf_counter()
    return {name: _draws(samples, name) for name in monitors}, built - t0, finished - built
