"""Statistics that decide whether posteriors agree, and the reports.

The statistics live in :mod:`.summary` (per-element summaries with MCSEs), :mod:`.diagnostics`
(the per-fit gate), :mod:`.agreement` (z-tests with Holm's correction, pooled R-hat),
:mod:`.density` (log-density check), :mod:`.reference` (reference files), :mod:`.prior` (prior
predictive agreement and its verdict), :mod:`.verdict`; the reports in ``report_*``. This
package imports nothing above it (see tests/test_layers.py): fitting is
:func:`crossppl.comparison.compare`, which ``crossppl.compare(...)`` calls (``crossppl``
makes this package callable). Nothing here branches on a backend's name: sources are compared
alike.
"""
