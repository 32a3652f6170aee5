"""The NumPyro backend: IR -> a runnable NumPyro module, fitted with NumPyro's NUTS.

The generated module defines ``model(**data)``: one keyword argument per entry of
:func:`~crossppl.backends.base.model_data` (dim sizes ``N_<dim>`` and data arrays; observed data
default to ``None``, so the same function draws from the prior predictive). Every statement with
dims is written inside ``numpyro.plate``s named after its dims, its value laid out in the
statement's dim order; every leaf of an expression is aligned to those dims with
:func:`~crossppl.backends.layout.align` (``alpha[:, None] + beta[:, None] * x``). Constraints come
from each distribution's support (NumPyro transforms automatically). The module runs on its own as
a script (``python rats_numpyro.py [SPEC] [--chains 4] [--warmup 1000] [--draws 1000]``).

Generated quantities (the spec's ``[generated]``) are drawn at the end of ``model``, only when it
is called with ``generated_quantities=True``: NUTS runs ``model`` without them, so they are
neither sampled by NUTS nor part of the log density, and ``Predictive`` draws them once per
posterior draw, given that draw (the script does the same after its fit). A spec without
``[generated]`` gets a ``model`` without the keyword. Prior predictive draws run ``model``
forward with ``Predictive(model, num_samples=draws)``, the observed data left out.

Numerics: programs run with 64-bit floats (``jax_enable_x64``), as Stan and PyMC do. In float32
the joint log density of Rats is off by up to ~1e-3 at typical points (relative ~1e-7: rounding of
terms near 1e3 with y ~ 300 and priors of precision 1e-6), and a float32 fit of Rats adapted worse
(54 instead of 30 leapfrog steps a draw on average), so it was no faster than float64 on CPU.
x64 is switched on only around this backend's own calls (``jax.enable_x64`` is a context
manager), so other JAX code in the same process keeps its own setting.

FitConfig maps to NumPyro as: chains/warmup/draws -> num_chains/num_warmup/num_samples, seed ->
``jax.random.PRNGKey(seed)``, target_accept -> target_accept_prob, max_treedepth ->
max_tree_depth, init "uniform" -> ``init_to_uniform(radius=2)`` (Stan's default; "engine" leaves
NumPyro's default, which is the same), progress -> a line when sampling starts and one when it
ends (NumPyro 0.22's own bar fails inside JAX 0.12's scoped ``enable_x64``: its io_callback
returns an int32 where the traced int64 is expected). Chains run in parallel on one
JAX CPU device each when JAX can still be given the devices (see :func:`choose_chain_method`).

Hand-written programs (:class:`~.base.UserProgram`): the entry (default ``model``) IS the model
function; it is called with the spec's data by name (:mod:`~.userprog`; observed arguments get
the data) and run by the same code as a generated model; draws and per-site log-density terms
come back under the spec's names.
"""

from .backend import (
    EXTRA_FIELDS,
    NumPyroBackend,
    choose_chain_method,
    configure_compilation_cache,
    request_cpu_devices,
)
from .generator import DIST_RULES, GENERATED_FLAG, GENERATED_STREAM, Arg, DistRule, NumPyroGenerator

__all__ = [
    "DIST_RULES",
    "EXTRA_FIELDS",
    "GENERATED_FLAG",
    "GENERATED_STREAM",
    "Arg",
    "DistRule",
    "NumPyroBackend",
    "NumPyroGenerator",
    "choose_chain_method",
    "configure_compilation_cache",
    "request_cpu_devices",
]
