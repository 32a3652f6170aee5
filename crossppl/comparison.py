"""``crossppl.compare``: fit a spec on several backends (and hand-written programs), then decide
with calibrated statistics whether their posteriors agree."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from crossppl import runner  # run_fits looked up at call time: tests replace it
from crossppl.api import fit, fit_program, load_spec
from crossppl.backends import backend_class, get_backend
from crossppl.backends import backend_names as registered
from crossppl.backends.base import UserProgram
from crossppl.config import FitConfig
from crossppl.datatree import as_datatree
from crossppl.errors import ConfigError, CrossPPLError
from crossppl.models.ir import Model
from crossppl.progress import FitProgress

__all__ = ["DENSITY_POINTS", "compare"]

#: Points at which the programs' log densities are compared.
DENSITY_POINTS = 20


def compare(
    spec: str | Path | Model,
    *,
    backends: Iterable[str] | None = None,
    programs: Iterable[str | UserProgram] | Mapping[str, str | UserProgram] | None = None,
    names: Mapping[str, str] | None = None,
    reference=None,
    alpha: float = 0.05,
    engines: Mapping[str, str] | None = None,
    parallel: int | None = None,
    timeout: float | None = None,
    config: FitConfig | None = None,
    **overrides,
):
    """Fit ``spec`` on each backend and compare the posteriors.

    Parameters
    ----------
    spec
        A bundled model's name, a path to a spec, or a loaded model.
    backends
        Backend names (default: every registered backend,
        ``crossppl.backends.backend_names()``; ``[]`` for none).
    programs
        Hand-written programs to hold against the spec: :class:`UserProgram` objects or
        strings ``"BACKEND=PATH[:ENTRY]"`` (``"stan=my_rats.stan"``,
        ``"pymc=my_port.py:build_model"``); a mapping gives each its report label.
    names
        Program name -> spec name, for the string-given programs whose names differ.
    reference
        A reference posterior: a path to summary JSON/CSV or NetCDF draws (see
        :mod:`crossppl.compare.reference`), or draws in memory (an ``xarray.DataTree`` with a
        ``posterior`` group, or an ArviZ ``InferenceData``).
    alpha
        Family-wise false-alarm rate of each pair of sources' agreement tests (Holm within
        the pair; a pair's result does not depend on the other sources of the run).
    engines
        Engine per backend, e.g. ``{"stan": "pystan"}``.
    parallel
        Fits run at once (default: as many as the cores hold, one core per chain).
    timeout
        Seconds after which a backend's fit is stopped and reported as failed.
    config
        Sampler settings shared by all fits (:class:`crossppl.config.FitConfig`), used as they
        are; None: the spec's ``[fit]`` values, else FitConfig's defaults.
    **overrides
        FitConfig's settings by name (``chains=2``, ``seed=3``, ...), over ``config`` or the
        spec's ``[fit]``; None leaves a setting as it is. ``progress`` shows each fit's
        progress on standard error (default: when it is a terminal): there, one line per fit
        redrawn in place; elsewhere, a line per stage and quarter of the iterations
        (:class:`crossppl.progress.FitProgress`). Also the notice of a Stan program compiled
        cold.

    Returns
    -------
    crossppl.compare.result.Comparison
    """
    # Every plain value is checked before the statistics (SciPy, pandas, ArviZ) are imported.
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be strictly between 0 and 1, found {alpha!r}",
                          entry="alpha")
    model = load_spec(spec)
    backend_names = list(backends) if backends is not None else list(registered())
    for name in backend_names:
        get_backend(name)  # unknown names fail here, before any fit
    twice = next((n for i, n in enumerate(backend_names) if n in backend_names[:i]), None)
    if twice is not None:
        raise ConfigError(f"{twice!r} is named twice; name each backend once", entry="backends")
    engines = dict(engines or {})
    config = FitConfig.resolve(model.fit, config, **overrides)  # checked before any fit
    user = parse_programs(programs, names)
    clash = sorted(set(backend_names) & set(user))
    if clash:
        raise ConfigError(f"program label {clash[0]!r} is also a backend; label it otherwise",
                          entry="programs")
    for label, engine in engines.items():  # an unknown engine fails here, not in its worker
        if label not in user and label not in registered():
            raise ConfigError(
                f"an engine is given for {label!r}, which is neither a backend "
                f"({', '.join(registered())}) nor a program of this comparison; give "
                "BACKEND=ENGINE (`crossppl backends` lists each backend's engines)",
                entry="engines")
        get_backend(user[label].backend if label in user else label).check_engine(engine)

    # The statistics load SciPy, pandas and ArviZ: imported once every plain value is checked.
    from crossppl.compare.agreement import pairwise_tests, pooled_rhat
    from crossppl.compare.diagnostics import diagnose
    from crossppl.compare.reference import load_reference
    from crossppl.compare.result import Comparison
    from crossppl.compare.summary import summarize
    from crossppl.compare.verdict import Source, decide
    if reference is None or isinstance(reference, str | Path):
        ref_table = load_reference(reference) if reference is not None else None
    else:  # draws in memory (a DataTree, or what ArviZ converts to one)
        ref_table = summarize(as_datatree(reference, "reference")["posterior"].to_dataset())
        reference = f"<{type(reference).__name__} in memory>"
    quiet = replace(config, progress=False)  # each fit's progress goes to the display
    jobs = [
        runner.FitJob(name, fit, {"spec": model, "backend": name, "engine": engines.get(name),
                           "config": quiet})
        for name in backend_names
    ]
    # A hand-written program runs with its own seed: a port that does what the generated
    # program does in the same order would otherwise reproduce its draws exactly, and agree
    # trivially instead of statistically.
    jobs += [
        runner.FitJob(label, fit_program, {"spec": model, "program": prog,
                                    "engine": engines.get(label),
                                    "config": replace(quiet, seed=program_seed(config.seed, i))})
        for i, (label, prog) in enumerate(user.items())
    ]
    outcomes = runner.run_fits(
        jobs,
        parallel=parallel or runner.default_parallel(config.chains),
        timeout=timeout,
        display=FitProgress(sys.stderr) if config.show_progress else None,
    )
    sources: dict[str, Source] = {}
    for name in [*backend_names, *user]:
        out = outcomes[name]
        kind = "program" if name in user else "generated"
        if not out.ok:
            sources[name] = Source(name, kind, engine=engines.get(name, ""), ran=False,
                                   seconds=out.seconds, error=out.error)
            continue
        summary = summarize(out.idata["posterior"].to_dataset())
        attrs = dict(out.idata["posterior"].attrs)
        sources[name] = Source(
            name, kind, engine=str(attrs.get("engine", "")), seconds=out.seconds,
            diagnostics=diagnose(out.idata, summary), summary=summary, idata=out.idata,
            attrs=attrs,
        )
    if ref_table is not None:
        sources["reference"] = Source("reference", "reference", summary=ref_table,
                                      attrs={"file": str(reference)})
    density, notes = _density_check(model, sources, user)
    healthy = {n: s.summary for n, s in sources.items() if s.ok and s.summary is not None}
    tests = pairwise_tests(healthy, alpha=alpha)
    sampled = {n: s.idata["posterior"].to_dataset() for n, s in sources.items()
               if s.ok and s.idata is not None}
    pooled = pooled_rhat(sampled) if len(sampled) >= 2 else pooled_rhat_empty()
    verdict = decide(list(sources.values()), tests, density)
    return Comparison(
        model=model.name, verdict=verdict, sources=sources, tests=tests, density=density,
        pooled=pooled, alpha=alpha, notes=notes, settings=config.as_attrs(),
    )


def program_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th hand-written program of a comparison run with ``seed``."""
    return (seed + 7919 * (index + 1)) % 2**31


def pooled_rhat_empty():
    """An empty pooled R-hat table."""
    import pandas as pd  # heavy: not loaded before the statistics are

    return pd.DataFrame(columns=["parameter", "r_hat", "flagged"])


def parse_programs(programs, names: Mapping[str, str] | None) -> dict[str, UserProgram]:
    """Normalize ``programs`` to ``{label: UserProgram}``."""
    if programs is None:
        return {}
    items = programs.items() if isinstance(programs, Mapping) else [(None, p) for p in programs]
    out: dict[str, UserProgram] = {}
    for label, prog in items:
        if isinstance(prog, str):
            prog = parse_program_arg(prog, names or {})
        if not isinstance(prog, UserProgram):
            raise ConfigError(f"a program must be 'BACKEND=PATH[:ENTRY]' or a UserProgram, "
                              f"found {prog!r:.60}", entry="programs")
        name = label or prog.name
        if name in out:
            name = f"{name}_{len(out)}"
        out[name] = prog
    return out


def parse_program_arg(text: str, names: Mapping[str, str]) -> UserProgram:
    """Parse ``"BACKEND=PATH[:ENTRY]"`` into a :class:`UserProgram`."""
    backend, sep, rest = text.partition("=")
    if not sep or backend not in registered() or not rest:
        raise ConfigError(
            f"cannot read the program {text!r}; write BACKEND=PATH[:ENTRY] with BACKEND one of "
            f"{', '.join(registered())} and ENTRY the function of a Python module, e.g. "
            "my_rats.stan or my_port.py:build_model after the '='",
            entry="program",
        )
    whole_file = backend_class(backend).program_entry is None
    path, _, entry = (rest, "", "") if whole_file else rest.partition(":")
    if not Path(path).is_file():
        raise ConfigError(f"program file {path!r} not found", entry="program")
    if path.endswith(".py") and not entry:
        raise ConfigError(
            f"give the function to call in {path}: {backend}={path}:FUNCTION", entry="program"
        )
    return UserProgram(backend, Path(path), entry or None, tuple(dict(names).items()))


def _density_check(model: Model, sources, user: Mapping[str, UserProgram]):
    """Evaluate every program's log density at draws of the first healthy fit, and its
    per-variable terms where they are located (see the comment below on Stan's), for
    :func:`crossppl.compare.density.check_density`."""
    from crossppl.compare.density import check_density

    # Points come from the first fit with draws (even one that failed its diagnostics: its
    # draws still lie where the density is worth comparing).
    donor = next((s for s in sources.values() if s.ok and s.idata is not None), None) or next(
        (s for s in sources.values() if s.idata is not None), None
    )
    if donor is None:
        return None, ["log densities not compared: no fit produced draws"]
    post = donor.idata["posterior"].to_dataset()
    missing = [p.name for p in model.parameters if p.name not in post]
    if missing:
        return None, [f"log densities not compared: {donor.name} has no draws of "
                      f"{', '.join(missing)}"]
    flat = post.stack(sample=("chain", "draw"))
    n = min(DENSITY_POINTS, flat.sizes["sample"])
    pick = np.linspace(0, flat.sizes["sample"] - 1, n).astype(int)
    points = {
        p.name: np.moveaxis(flat[p.name].isel(sample=pick).values, -1, 0)
        for p in model.parameters
    }
    logps, terms, notes = {}, {}, []
    evaluated = {}
    for name, source in sources.items():
        if source.kind == "reference" or not source.ran:
            continue
        try:
            if name in user:
                backend = get_backend(user[name].backend)
                program = user[name]
                logps[name] = np.asarray(backend.log_density_user(model, program, points))
            else:
                backend = get_backend(name)
                program = backend.emit(model)
                logps[name] = np.asarray(backend.log_density(model, program, points))
        except CrossPPLError as exc:
            notes.append(f"log density of {name} not evaluated: {exc}")
            continue
        evaluated[name] = (backend, program)
    if len(logps) < 2:
        return None, [*notes, "log densities not compared: fewer than two programs evaluated"]

    def locate(name: str) -> None:
        backend, program = evaluated[name]
        try:
            found = backend.log_density_terms(model, program, points)
        except CrossPPLError as exc:
            notes.append(f"terms of {name} not located: {exc}")
            return
        if found:
            terms[name] = found

    # Terms that cost a second build (Stan's terms program) are located for a generated
    # program only where they are worth it: a hand-written program is compared (the per-term
    # rule catches its small slips), or its whole density differs from another program's (to
    # name the culprits).
    deferred = [n for n, (b, _) in evaluated.items() if b.costly_terms and n not in user]
    for name in evaluated:
        if name not in deferred:
            locate(name)
    if deferred:
        first = check_density(logps, terms)
        differs = {x for row in first.pairs.itertuples() if not row.density_constant
                   for x in (row.a, row.b)}
        ported = any(n in user for n in evaluated)
        for name in deferred:
            if ported or name in differs:
                locate(name)
    return check_density(logps, terms), notes
