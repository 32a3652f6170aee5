"""The one registry of backends: entry points in the ``crossppl.backends`` group.

A backend is a :class:`~crossppl.backends.base.Backend` subclass named by an entry point, so a
package outside crossppl adds one in its own ``pyproject.toml``::

    [project.entry-points."crossppl.backends"]
    mine = "my_package.backend:MyBackend"

The CLI's choices, the API's defaults and the test parametrization all read this registry.
Loading a backend class imports only its own module; the heavy PPL library is imported when it
is first used, so :func:`backend_status` can say what is missing without failing on it.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from functools import cache

from crossppl.errors import ConfigError, EngineError

from .base import Backend

__all__ = [
    "GROUP",
    "BackendStatus",
    "EngineStatus",
    "backend_class",
    "backend_names",
    "backend_status",
    "get_backend",
]

#: The entry-point group backends are registered in.
GROUP = "crossppl.backends"

#: The distribution whose backends win a name claimed twice.
_OWN = "crossppl"


@cache
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    found = importlib.metadata.entry_points(group=GROUP)

    def origin(ep: importlib.metadata.EntryPoint) -> str:
        dist = getattr(ep, "dist", None)
        return dist.name if dist is not None else ""

    points: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in sorted(found, key=lambda ep: (origin(ep) != _OWN, origin(ep), ep.name)):
        points.setdefault(ep.name, ep)
    if not points:
        raise EngineError(
            "-", "-",
            f"no backend is registered (entry-point group {GROUP!r} is empty): crossppl's "
            "package metadata is missing or stale; reinstall it, e.g. pip install -e .",
        )
    return points


@cache
def backend_names() -> tuple[str, ...]:
    """Every registered backend (the default of ``--backends``), by their classes'
    :attr:`~crossppl.backends.base.Backend.order`, then name; a backend whose class cannot be
    loaded comes last (using it raises the reason)."""

    def key(name: str) -> tuple[float, str]:
        try:
            return (backend_class(name).order, name)
        except (EngineError, ImportError):
            return (float("inf"), name)

    return tuple(sorted(_entry_points(), key=key))


def backend_class(name: str) -> type[Backend]:
    """The :class:`Backend` subclass registered as ``name``."""
    points = _entry_points()
    if name not in points:
        raise ConfigError(
            f"unknown backend {name!r}; choose one of {', '.join(backend_names())} "
            "(`crossppl backends` lists them)",
            entry="backend",
        )
    try:
        cls = points[name].load()
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "crossppl":
            raise
        raise EngineError(
            name, "-",
            f"needs the package {exc.name!r}, which is not installed; "
            f"install it with: pip install 'crossppl[{name}]'",
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise EngineError(name, "-", f"the entry point {points[name].value!r} of group "
                          f"{GROUP!r} is not a crossppl Backend subclass")
    return cls


def get_backend(name: str) -> Backend:
    """An instance of the backend called ``name``."""
    return backend_class(name)()


@dataclass(frozen=True)
class EngineStatus:
    """Whether one engine can run here, and if not, why."""

    engine: str
    usable: bool
    reason: str
    versions: dict[str, str]
    default: bool = False


@dataclass(frozen=True)
class BackendStatus:
    """One backend's engines, as :func:`backend_status` found them."""

    backend: str
    source: str
    engines: tuple[EngineStatus, ...]
    problem: str = ""  # the backend itself could not be loaded


def backend_status() -> list[BackendStatus]:
    """Every registered backend and engine: usable on this machine or why not, and versions."""
    out = []
    points = _entry_points()
    for name in backend_names():
        ep = points[name]
        try:
            cls = backend_class(name)
        except (EngineError, ConfigError, ImportError) as exc:
            out.append(BackendStatus(name, ep.value, (), problem=str(exc)))
            continue
        backend = cls()
        engines = []
        default = None
        for engine in cls.engines:
            problem = backend.engine_problem(engine)
            if problem is None and default is None:
                default = engine
            engines.append((engine, problem))
        out.append(BackendStatus(name, ep.value, tuple(
            EngineStatus(engine, problem is None, problem or "", backend.engine_versions(engine),
                         default=engine == default)
            for engine, problem in engines)))
    return out
