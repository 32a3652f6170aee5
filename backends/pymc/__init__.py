"""The PyMC backend: the IR written as an idiomatic, vectorized PyMC module, fitted with nutpie
(Rust NUTS on the PyMC model) or PyMC's own NUTS.

The generated module defines ``build_model(data, coords) -> pm.Model`` (``data``: name -> array
as :func:`crossppl.backends.base.model_data` gives it; ``coords``: ``model.coords``) and runs as
a script. :class:`PyMCBackend` executes exactly that source (:func:`~.pyexec.load_module`), builds
the model and samples it.

A spec's [generated] quantities are not free variables of the model NUTS samples: the module's
``build_model(data, coords, generated=False)`` declares them (names in ``GENERATED``) only when
``generated=True``, and after NUTS they are drawn once per posterior draw from that model with
``pm.sample_posterior_predictive`` (prior predictive draws: ``pm.sample_prior_predictive``). A
spec without [generated] gives the module without the flag.

Hand-written programs (:class:`~.base.UserProgram`): the entry (default ``build_model``) is called
with the spec's data by name (:mod:`~.userprog`) and returns a ``pm.Model``, sampled by the same
code as a generated model; draws and per-variable log-density terms come back under the spec's
names.

PyTensor's compile cache goes under ``crossppl.config.cache_dir("pytensor")`` unless the user
chose a compile dir (``PYTENSOR_FLAGS`` or a ``.pytensorrc``); this only works when this module
is imported before PyTensor is (the normal path: ``crossppl.fit`` imports it on first use).
"""

from .backend import PyMCBackend
from .generator import DIST_RULES, FUNCTIONS, PyMCDist, PyMCGenerator

__all__ = ["DIST_RULES", "FUNCTIONS", "PyMCBackend", "PyMCDist", "PyMCGenerator"]
