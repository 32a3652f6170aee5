"""Statistics that decide whether posteriors agree, and the reports.

``crossppl.compare`` is both this package and the function users call:
``crossppl.compare("rats")`` runs :func:`crossppl.comparison.compare` (fit every backend,
compare, return a :class:`~crossppl.compare.result.Comparison`). The statistics live in
:mod:`.summary` (per-element summaries with MCSEs), :mod:`.diagnostics` (the per-fit gate),
:mod:`.agreement` (z-tests with Holm's correction, pooled R-hat), :mod:`.density` (log-density
check), :mod:`.reference` (reference files), :mod:`.verdict`; the reports in ``report_*``.
Nothing here branches on a backend's name: sources are compared alike.
"""

from __future__ import annotations

import sys
import types

__all__ = ["compare"]


def compare(*args, **kwargs):
    """Fit and compare; see :func:`crossppl.comparison.compare`."""
    from crossppl.comparison import compare as _compare

    return _compare(*args, **kwargs)


class _CallableModule(types.ModuleType):
    """Lets ``crossppl.compare(...)`` call :func:`compare` while staying a package."""

    def __call__(self, *args, **kwargs):
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
