"""The JAGS backend: IR -> a model in the BUGS language, fitted by JAGS's Gibbs sampler.

* :mod:`.generator` writes the program (:class:`~.generator.JagsGenerator`): ``for`` loops over
  the spec's dims, BUGS's parameterizations (``dnorm(mu, tau)`` with a precision,
  ``dgamma(shape, rate)``, ``dbin(p, n)``), derived quantities as logical nodes ``<-``.
* :mod:`.engine` runs it with PyJAGS (``pip install 'crossppl[jags]'``; its wheels bundle JAGS
  4.3 itself, so no system JAGS is needed), and documents how :class:`~crossppl.config.FitConfig`
  maps to JAGS: ``warmup`` to adaptation plus a burn-in, ``draws`` to thinned iterations (both
  times :data:`~.engine.GIBBS_MULTIPLIER`), ``seed`` to each chain's JAGS generator, ``init``
  ``"uniform"`` to Stan-like initial values.

JAGS is a Gibbs sampler: its fits have no NUTS statistics (no divergences, step size, tree depth,
energy), so :attr:`JagsBackend.required_stats` is empty, the comparison's diagnostics gate
checks R-hat and ESS only, and reports say that ``target_accept`` and ``max_treedepth`` do not
apply (:attr:`JagsBackend.algorithm`, :attr:`JagsBackend.nuts_settings`).

The log density at given points (:meth:`JagsBackend.log_density`) is evaluated by JAGS itself,
through a companion program (:meth:`~.generator.JagsGenerator.density_program`) in which the
parameters are data and every stochastic node ``x ~ dfoo(args)`` is the logical node
``logdensity.foo(x, args)`` with the very arguments the sampled program writes: so the density
check holds the JAGS translation of every distribution against the other backends', and each
variable's term is compared on its own (:meth:`JagsBackend.log_density_terms`). Half
distributions (``T(0,)``) lack their constant log 2, which a comparison up to a constant ignores.
"""

from __future__ import annotations

from .backend import JagsBackend, initial_values, plan
from .generator import JagsGenerator

__all__ = ["JagsBackend", "JagsGenerator", "initial_values", "plan"]
