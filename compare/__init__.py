"""Statistics that decide whether posteriors from several backends agree (see the issue
"The verdict"); the per-backend diagnostics live in :mod:`crossppl.compare.diagnostics`."""
