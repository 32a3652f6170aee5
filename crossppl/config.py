"""The one sampler configuration every backend runs under.

:class:`FitConfig`'s dataclass fields are the single list of sampler settings: the settings a
spec's ``[fit]`` table may recommend, the command line's options (``--chains``, ...) and the
keyword overrides of :func:`crossppl.fit` and :func:`crossppl.compare` are derived from them
and their metadata (:func:`setting`).
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path

from crossppl.errors import ConfigError

__all__ = ["INIT_STRATEGIES", "FitConfig", "cache_dir", "setting"]

#: ``"uniform"``: every unconstrained coordinate uniform on (-2, 2), Stan's default, on all
#: backends. ``"engine"``: each engine's own default.
INIT_STRATEGIES = ("uniform", "engine")

#: A rule: the value -> what is wrong with it (after the setting's name), or None.
Rule = Callable[[object], str | None]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(low: int) -> Rule:
    def rule(value: object) -> str | None:
        ok = _is_int(value) and value >= low  # type: ignore[operator]
        return None if ok else f"must be an integer >= {low}, found {value!r}"
    return rule


def _seed(value: object) -> str | None:
    ok = _is_int(value) and 0 <= value < 2**31  # type: ignore[operator]
    return None if ok else f"must be an integer in [0, 2**31), found {value!r}"


def _open_unit(value: object) -> str | None:
    ok = isinstance(value, float | int) and not isinstance(value, bool) and 0 < value < 1
    return None if ok else f"must be strictly between 0 and 1, found {value!r}"


def _one_of(choices: tuple[str, ...]) -> Rule:
    def rule(value: object) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, found {value!r}"
    return rule


def setting(default: object, *, rule: Rule | None = None, example: object = None,
            spec: bool = True, choices: tuple[str, ...] | None = None) -> Field:
    """A :class:`FitConfig` field and what is derived from it.

    Parameters
    ----------
    default
        The default value (its type is the command-line option's; None: an on/off switch).
    rule
        Checks a value; None accepts any.
    example
        A valid value an error message suggests (none for a switch or a choice).
    spec
        Whether a spec's ``[fit]`` table may recommend it.
    choices
        The values the command line accepts, if a fixed few.
    """
    meta = {"rule": rule, "example": example, "spec": spec, "choices": choices}
    return field(default=default, metadata=meta)


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

    chains: int = setting(4, rule=_integer(1), example=4)
    warmup: int = setting(1000, rule=_integer(0), example=1000)
    draws: int = setting(1000, rule=_integer(1), example=1000)
    seed: int = setting(1, rule=_seed, example=1, spec=False)
    target_accept: float = setting(0.8, rule=_open_unit, example=0.9)
    max_treedepth: int = setting(10, rule=_integer(1), example=10)
    init: str = setting("uniform", rule=_one_of(INIT_STRATEGIES), choices=INIT_STRATEGIES)
    progress: bool | None = setting(None, spec=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            problem = self.problem(f.name, getattr(self, f.name))
            if problem:
                raise ConfigError(problem, entry=f.name)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every setting's name, in order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def spec_names(cls) -> tuple[str, ...]:
        """The settings a spec's ``[fit]`` table may recommend."""
        return tuple(f.name for f in fields(cls) if f.metadata["spec"])

    @classmethod
    def problem(cls, name: str, value: object) -> str | None:
        """What is wrong with ``value`` for the setting ``name`` (``"draws must be ..."``), or
        None when it is valid."""
        rule = next(f for f in fields(cls) if f.name == name).metadata["rule"]
        found = rule(value) if rule is not None else None
        return f"{name} {found}" if found else None

    @classmethod
    def resolve(
        cls,
        recommended: Iterable[tuple[str, object]] | Mapping[str, object] = (),
        config: FitConfig | None = None,
        **overrides: object,
    ) -> FitConfig:
        """The settings of one fit.

        Parameters
        ----------
        recommended
            A spec's ``[fit]`` settings: over the defaults, under everything the user gives.
        config
            A whole configuration: used as it is (``recommended`` is not consulted).
        **overrides
            Setting name -> value, over ``config`` (or the recommended settings); None means
            not given.

        Raises
        ------
        ConfigError
            An unknown setting, or a value the setting does not take, named with the value
            found and the fix.
        """
        if config is not None and not isinstance(config, FitConfig):
            raise ConfigError(f"config must be a FitConfig or None, found "
                              f"{type(config).__name__}; give config=FitConfig(...), or the "
                              "settings as keywords (chains=2, ...)", entry="config")
        known = cls.names()
        for name, value in overrides.items():
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean {close[0]}={value!r}? " if close else ""
                raise ConfigError(
                    f"unknown sampler setting {name!r} (found {name}={value!r}); {hint}the "
                    f"settings are {', '.join(known)}", entry=name)
            problem = None if value is None else cls.problem(name, value)
            example = next(f for f in fields(cls) if f.name == name).metadata["example"]
            if problem:
                fix = f"give e.g. {name}={example!r}, or" if example is not None else "or"
                raise ConfigError(f"{problem}; {fix} leave it out for the default",
                                  entry=name)
        given = {k: v for k, v in overrides.items() if v is not None}
        if config is not None:
            return replace(config, **given)
        values = dict(recommended.items() if isinstance(recommended, Mapping) else recommended)
        return cls(**{**values, **given})

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
