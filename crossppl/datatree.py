"""The canonical result object, an ``xarray.DataTree`` with ArviZ's groups: conversion of what
users hand in, and reading what crossppl wrote."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["as_datatree", "load_netcdf"]


def as_datatree(data, what: str = "data"):
    """``data`` as an ``xarray.DataTree`` with ArviZ's groups.

    Accepts a DataTree (returned as is), anything :func:`arviz_base.convert_to_datatree`
    converts, and an object with ArviZ 0.x ``InferenceData``'s interface (``groups()`` and one
    ``xarray.Dataset`` attribute per group), e.g. one unpickled from an older environment.
    """
    import xarray as xr

    if isinstance(data, xr.DataTree):
        return data
    groups = getattr(data, "groups", None)
    if callable(groups):
        try:
            names = list(groups())
            return xr.DataTree.from_dict({f"/{g}": getattr(data, g) for g in names})
        except (AttributeError, TypeError, ValueError):
            pass
    from arviz_base import convert_to_datatree

    try:
        return convert_to_datatree(data)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{what}: expected an xarray.DataTree with a 'posterior' group (what crossppl.fit "
            f"returns), found {type(data).__name__}"
        ) from exc


def load_netcdf(path: str | os.PathLike) -> Any:
    """Read a NetCDF file written by :func:`crossppl.api.save_netcdf` (or by ArviZ 0.x's
    ``InferenceData.to_netcdf``: the same groups) fully into memory as an ``xarray.DataTree``,
    closing the file."""
    import xarray as xr

    with xr.open_datatree(path) as lazy:
        return lazy.load()
