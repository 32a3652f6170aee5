"""The one sampler configuration every backend runs under."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from crossppl.errors import ConfigError

__all__ = ["INIT_STRATEGIES", "FitConfig", "cache_dir"]

#: ``"uniform"``: every unconstrained coordinate uniform on (-2, 2), Stan's default, on all
#: backends. ``"engine"``: each engine's own default.
INIT_STRATEGIES = ("uniform", "engine")


@dataclass(frozen=True, slots=True)
class FitConfig:
    """NUTS settings shared by all backends; each maps them to its engine's own names.

    Parameters
    ----------
    chains, warmup, draws
        Number of chains, warmup (tuning) iterations and kept draws per chain.
    seed
        Random seed; the same seed gives the same draws on a second run of the same backend.
    target_accept
        Target acceptance statistic of step-size adaptation (Stan's ``adapt_delta``).
    max_treedepth
        Largest tree depth of NUTS (Stan's ``max_depth``; PyMC's ``max_treedepth``).
    init
        Initialization strategy, one of :data:`INIT_STRATEGIES`.
    progress
        Show a progress bar; ``None`` shows one when standard error is a terminal.
    """

    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    seed: int = 1
    target_accept: float = 0.8
    max_treedepth: int = 10
    init: str = "uniform"
    progress: bool | None = None

    def __post_init__(self) -> None:
        for name, low in (("chains", 1), ("warmup", 0), ("draws", 1), ("max_treedepth", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"{name} must be an integer >= {low}, found {value!r}", entry=name
                )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not (
            0 <= self.seed < 2**31
        ):
            raise ConfigError(
                f"seed must be an integer in [0, 2**31), found {self.seed!r}", entry="seed"
            )
        if not isinstance(self.target_accept, float | int) or not 0 < self.target_accept < 1:
            raise ConfigError(
                f"target_accept must be strictly between 0 and 1, found {self.target_accept!r}",
                entry="target_accept",
            )
        if self.init not in INIT_STRATEGIES:
            raise ConfigError(
                f"init must be one of {', '.join(INIT_STRATEGIES)}, found {self.init!r}",
                entry="init",
            )

    @classmethod
    def resolve(
        cls, recommended: Iterable[tuple[str, object]] | Mapping[str, object] = (), **settings
    ) -> FitConfig:
        """The settings of one fit: the defaults, overridden by a spec's ``[fit]`` settings
        (``recommended``), overridden by the user's ``settings`` that are not None."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(
                f"unknown sampler setting {unknown[0]!r}; the settings are {', '.join(known)}",
                entry=unknown[0],
            )
        values = dict(recommended.items() if isinstance(recommended, Mapping) else recommended)
        values.update({k: v for k, v in settings.items() if v is not None})
        return cls(**values)

    @property
    def show_progress(self) -> bool:
        """Whether to show a progress bar."""
        if self.progress is None:
            return sys.stderr.isatty()
        return bool(self.progress)

    def as_attrs(self) -> dict[str, int | float | str]:
        """The settings as flat NetCDF-friendly attributes."""
        out = {k: v for k, v in asdict(self).items() if k != "progress"}
        return {k: v for k, v in out.items() if v is not None}


def cache_dir(kind: str) -> Path:
    """Folder for compiled-program caches of ``kind`` (``stan``, ``pytensor``, ``jax``, ...).

    ``$CROSSPPL_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/crossppl`` or ``~/.cache/crossppl``.
    """
    root = os.environ.get("CROSSPPL_CACHE_DIR")
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "crossppl"
    path = base / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
