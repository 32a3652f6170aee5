"""The Stan backend: IR -> a readable, vectorized Stan program, fitted with PyStan or CmdStanPy.

The generator writes what a Stan programmer would write by hand:

* 1-D quantities are ``vector[N_dim]`` (integer data ``array[N_dim] int``), 2-D ones
  ``matrix[N_a, N_b]``; dim sizes are data ``int<lower=1> N_<dim>``.
* Named dims are broadcast explicitly, as Stan needs: inside a statement over dims ``(a, b)`` a
  vector over ``a`` becomes ``rep_matrix(v, N_b)``, one over ``b`` ``rep_matrix(v', N_a)``, a
  ``(b, a)`` matrix ``m'``, and the product of an ``a``-vector and a ``b``-vector is the outer
  product ``v * w'``. Every sub-expression is computed at its own dims and broadcast only where it
  meets a bigger one.
* Distributions come from :data:`DIST_RULES` (one entry per parameterization Stan writes
  natively; the others are rewritten through :mod:`crossppl.models.conversions`, a precision
  ``tau`` as ``inv_sqrt(tau)``); sampling statements use ``~``, vectorized, a matrix through
  ``to_vector``.
* Parameters get the constraint of their distribution's support; derived quantities used by the
  model are ``transformed parameters``, the others ``generated quantities``.
* A spec's ``[generated]`` quantities are drawn in ``generated quantities``, after the derived
  ones, with the vectorized ``_rng`` functions of the same rules: ``real`` / ``vector`` /
  ``matrix`` for a continuous distribution, ``int`` / ``array[...] int`` for a discrete one.
* :meth:`StanGenerator.prior_program` writes the prior predictive program (a data block without
  the observed values and one ``generated quantities`` block), run with ``fixed_param``.

Anything without a rule raises :class:`~crossppl.errors.NotYetTranslated`; nothing is dropped.
The engines that fit the program live in :mod:`crossppl.backends.stan.engines`.

Hand-written Stan programs
--------------------------
A user's ``.stan`` file (:class:`~crossppl.backends.base.UserProgram` with ``backend="stan"``)
is compiled, cached and fitted exactly as a generated program is. Its conventions:

* Data are passed BY NAME, as :func:`stan_data` writes them: every variable of the program's
  ``data`` block must be a spec data variable or a dim size ``N_<dim>`` (index data 1-based), or
  be mapped to one with ``names`` (``names=(("N", "N_rat"), ("T", "N_week"))`` for a program
  that calls its sizes ``N`` and ``T``). A data variable of the wrong rank or an ``int`` one that
  the spec holds as real is an error before anything is compiled. Any Stan container of the right
  rank fits: the spec's ``y[rat, week]`` can be ``matrix[N, T]``, ``array[N] vector[T]`` or
  ``array[N, T] real``.
* Parameters, transformed parameters and generated quantities are matched to the spec's
  parameters and derived quantities by name, after ``names`` (``("sigma_y", "sigma")``); the
  others are left out of the comparison. Their Stan dims must be the spec's dims in the spec's
  order (axes of size 1 aside): a ``matrix[N_week, N_rat]`` for the spec's ``z[rat, week]`` is an
  error, not silently transposed.
* The log density (:meth:`StanBackend.log_density_user`) is evaluated only when the program's
  parameters are exactly the spec's (after ``names``): a program parameterized otherwise (a
  non-centred variant, ``sigma`` sampled instead of ``tau``) has a density in other coordinates,
  and that is an :class:`~crossppl.errors.EngineError`, not a guess.
* Per-variable terms (:meth:`StanBackend.log_density_terms`, for generated and hand-written
  programs alike) come from a terms program (:mod:`crossppl.backends.stan.terms`): each
  sampling statement's density counts for the variable on its left (program names, mapped by
  ``names``), ``target += dist_lpdf(x | ...)`` for ``x``, any other ``target +=`` for
  ``target``.
* ``#include`` is not supported (httpstan compiles a program's text alone): inline the file.

Mistakes in the user's file (stanc rejects it, data it needs that the spec lacks, shapes that do
not fit) are :class:`~crossppl.backends.userprog.ProgramError`, which names the file.
"""

from .backend import StanBackend, prior_data, stan_data, user_data
from .generator import DIST_RULES, Code, StanDist, StanGenerator

__all__ = [
    "DIST_RULES",
    "Code",
    "StanBackend",
    "StanDist",
    "StanGenerator",
    "prior_data",
    "stan_data",
    "user_data",
]
