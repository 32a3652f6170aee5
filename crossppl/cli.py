"""The ``crossppl`` command line.

Exit codes: 0 success; 2 bad input (spec, data, options), printed without a traceback; 3 a
backend could not run the model (not yet translated, or the engine failed); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from crossppl.errors import CrossPPLError, EngineError, NotYetTranslated, UserInputError

__all__ = ["main"]

BACKEND_NAMES = ("stan", "pymc", "numpyro")
EXIT_OK, EXIT_USAGE, EXIT_BACKEND, EXIT_INTERRUPTED = 0, 2, 3, 130


def _parser() -> argparse.ArgumentParser:
    from crossppl import __version__
    from crossppl.config import INIT_STRATEGIES, FitConfig

    defaults = FitConfig()
    parser = argparse.ArgumentParser(
        prog="crossppl",
        description="Write one Bayesian model spec for Stan, PyMC and NumPyro, and fit it.",
    )
    parser.add_argument("--version", action="version", version=f"crossppl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="list the bundled models, one line each")

    spec_help = "a bundled model's name (see `crossppl list`) or a path to a .toml spec"
    emit = sub.add_parser("emit", help="print the program a backend runs for a spec")
    emit.add_argument("spec", help=spec_help)
    emit.add_argument("--backend", "-b", required=True, choices=BACKEND_NAMES)
    emit.add_argument("--output", "-o", help="write the program to this file instead")

    fit = sub.add_parser("fit", help="fit a spec with one backend's generated program (NUTS)")
    fit.add_argument("spec", help=spec_help)
    fit.add_argument("--backend", "-b", required=True, choices=BACKEND_NAMES)
    fit.add_argument("--engine", help="engine running the program (default: the backend's "
                     "first available: stan cmdstanpy|pystan, pymc nutpie|pymc, numpyro)")
    fit.add_argument("--output", "-o", help="write the InferenceData to this NetCDF file")
    _sampler_options(fit, defaults, INIT_STRATEGIES)

    cmp = sub.add_parser(
        "compare",
        help="fit a spec on several backends (and hand-written programs) and decide whether "
        "the posteriors agree; exit 0 match, 1 mismatch, 3 inconclusive, 2 bad input",
    )
    cmp.add_argument("spec", nargs="?", help=spec_help)
    cmp.add_argument("--all", action="store_true",
                     help="compare every bundled model; one line per model")
    cmp.add_argument("--out-dir", help="with --all: write <model>.json and <model>.html here")
    cmp.add_argument("--backends", default=",".join(BACKEND_NAMES),
                     help="comma-separated backends (default: all); 'none' for none")
    cmp.add_argument("--program", action="append", default=[], metavar="BACKEND=PATH[:ENTRY]",
                     help="a hand-written program, e.g. stan=my_rats.stan or "
                     "pymc=my_port.py:build_model (repeatable)")
    cmp.add_argument("--rename", action="append", default=[], metavar="THEIRS=OURS",
                     help="a hand-written program's variable name -> the spec's (repeatable)")
    cmp.add_argument("--reference", help="reference posterior: summary .json/.csv or draws .nc")
    cmp.add_argument("--engine", action="append", default=[], metavar="BACKEND=ENGINE",
                     help="engine for a backend, e.g. stan=pystan (repeatable)")
    cmp.add_argument("--alpha", type=float, default=0.05,
                     help="family-wise false-alarm rate of the tests (Holm; default 0.05)")
    cmp.add_argument("--json", help="write the JSON report here")
    cmp.add_argument("--html", help="write the self-contained HTML report here")
    cmp.add_argument("--save-reference", metavar="PATH",
                     help="store the first healthy backend's summaries as a reference file")
    cmp.add_argument("--timeout", type=float, help="stop a backend's fit after this many s")
    cmp.add_argument("--parallel", type=int, help="fits at once (default: cores / chains)")
    _sampler_options(cmp, defaults, INIT_STRATEGIES)

    prior = sub.add_parser(
        "prior",
        help="simulate a spec from its priors on several backends (no MCMC) and test that the "
        "prior predictive distributions agree; exit 0 match, 1 mismatch, 3 inconclusive",
    )
    prior.add_argument("spec", nargs="?", help=spec_help)
    prior.add_argument("--all", action="store_true", help="every bundled model, one block each")
    prior.add_argument("--backends", default=",".join(BACKEND_NAMES),
                       help="comma-separated backends (default: all)")
    prior.add_argument("--draws", type=int, default=2000, help="draws per backend (2000)")
    prior.add_argument("--seed", type=int, default=defaults.seed)
    prior.add_argument("--alpha", type=float, default=0.01,
                       help="family-wise false-alarm rate of the tests (Holm; default 0.01)")
    prior.add_argument("--timeout", type=float, help="stop a backend after this many s")
    return parser


def _sampler_options(p, defaults, inits) -> None:
    fit = p
    spec = "the spec's [fit] value, else"
    fit.add_argument("--chains", type=int, help=f"default: {spec} {defaults.chains}")
    fit.add_argument("--warmup", type=int, help=f"default: {spec} {defaults.warmup}")
    fit.add_argument("--draws", type=int, help=f"default: {spec} {defaults.draws}")
    fit.add_argument("--seed", type=int, help=f"default: {defaults.seed}")
    fit.add_argument("--target-accept", type=float,
                     help=f"default: {spec} {defaults.target_accept}")
    fit.add_argument("--max-treedepth", type=int,
                     help=f"default: {spec} {defaults.max_treedepth}")
    fit.add_argument("--init", choices=inits, help=f"default: {spec} {defaults.init}")
    progress = fit.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show a progress bar (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false")


def _cmd_list(args: argparse.Namespace) -> int:
    from crossppl.api import list_models

    models = list_models()
    width = max(map(len, models), default=0)
    for name, description in models.items():
        print(f"{name:<{width}}  {description}")
    return EXIT_OK


def _cmd_emit(args: argparse.Namespace) -> int:
    from crossppl.api import emit

    program = emit(args.spec, args.backend)
    if args.output:
        from pathlib import Path

        Path(args.output).write_text(program)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(program)
    return EXIT_OK


def _cmd_fit(args: argparse.Namespace) -> int:
    from crossppl.api import fit

    idata = fit(
        args.spec,
        args.backend,
        engine=args.engine,
        output=args.output,
        chains=args.chains,
        warmup=args.warmup,
        draws=args.draws,
        seed=args.seed,
        target_accept=args.target_accept,
        max_treedepth=args.max_treedepth,
        init=args.init,
        progress=args.progress,
    )
    _print_fit_summary(idata)
    if args.output:
        print(f"wrote {args.output}")
    return EXIT_OK


def _print_fit_summary(idata) -> None:
    import arviz as az

    attrs = idata.posterior.attrs
    scalars = [name for name, var in idata.posterior.data_vars.items() if var.ndim == 2]
    vectors = [name for name in idata.posterior.data_vars if name not in scalars]
    from crossppl.backends.base import quiet_arviz

    with quiet_arviz():  # a 1-chain fit: R-hat is undefined, shown as NaN
        summary = az.summary(idata, var_names=scalars, kind="all", round_to=4)
    n_div = int(idata.sample_stats["diverging"].sum())
    print(
        f"{attrs['model']} on {attrs['backend']} ({attrs['engine']}): "
        f"{attrs['config_chains']} chains x ({attrs['config_warmup']} warmup + "
        f"{attrs['config_draws']} draws), build {attrs['build_seconds']:.1f} s, "
        f"sampling {attrs['sampling_seconds']:.1f} s, {n_div} divergences"
    )
    print(summary.to_string())
    if vectors:
        print(f"(not shown: {', '.join(vectors)}; see the NetCDF output or az.summary)")


def _pairs(items: list[str], option: str) -> dict[str, str]:
    from crossppl.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"{option} takes KEY=VALUE, found {item!r}", entry=option)
        out[key] = value
    return out


def _cmd_compare(args: argparse.Namespace) -> int:
    from crossppl.errors import ConfigError

    if args.all == bool(args.spec):
        raise ConfigError("give a SPEC or --all (not both)", entry="spec")
    if args.all:
        return _compare_all(args)
    result = _run_compare(args, args.spec)
    sys.stdout.write(result.to_text())
    for path, writer in ((args.json, result.write_json), (args.html, result.write_html)):
        if path:
            writer(path)
            print(f"wrote {path}")
    if args.save_reference:
        try:
            result.save_reference(args.save_reference)
            print(f"wrote {args.save_reference}")
        except ValueError as exc:
            print(f"crossppl: no reference saved: {exc}", file=sys.stderr)
    return result.exit_code


def _compare_all(args: argparse.Namespace) -> int:
    from pathlib import Path

    from crossppl.errors import CrossPPLError
    from crossppl.models import bundled_specs

    codes = []
    for name in bundled_specs():
        try:
            result = _run_compare(args, name)
        except CrossPPLError as exc:
            print(f"{name:<24} error: {exc}")
            codes.append(EXIT_BACKEND)
            continue
        times = ", ".join(
            f"{s.name} {s.seconds:.0f} s" for s in result.sources.values() if s.kind != "reference"
        )
        why = "" if result.verdict.kind == "match" else f"  ({result.verdict.reasons[0]})"
        print(f"{name:<24} {result.verdict.kind.upper():<13} {times}{why}", flush=True)
        if args.out_dir:
            out = Path(args.out_dir)
            result.write_json(out / f"{name}.json")
            result.write_html(out / f"{name}.html")
        codes.append(result.exit_code)
    if args.out_dir:
        print(f"wrote {args.out_dir}/<model>.json and .html")
    return 1 if 1 in codes else (3 if any(codes) else 0)


def _cmd_prior(args: argparse.Namespace) -> int:
    from crossppl.errors import ConfigError
    from crossppl.models import bundled_specs
    from crossppl.prior import compare_prior

    if args.all == bool(args.spec):
        raise ConfigError("give a SPEC or --all (not both)", entry="spec")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    codes = []
    for spec in bundled_specs() if args.all else [args.spec]:
        result = compare_prior(spec, backends=backends, draws=args.draws, seed=args.seed,
                               alpha=args.alpha, timeout=args.timeout)
        print(result, flush=True)
        codes.append({"match": EXIT_OK, "mismatch": 1}.get(result.verdict, EXIT_BACKEND))
    return 1 if 1 in codes else max(codes)


def _run_compare(args: argparse.Namespace, spec: str):
    from crossppl.comparison import compare

    backends = [] if args.backends.strip() == "none" else [
        b.strip() for b in args.backends.split(",") if b.strip()
    ]
    return compare(
        spec,
        backends=backends,
        programs=args.program,
        names=_pairs(args.rename, "--rename"),
        reference=args.reference,
        alpha=args.alpha,
        engines=_pairs(args.engine, "--engine"),
        chains=args.chains,
        warmup=args.warmup,
        draws=args.draws,
        seed=args.seed,
        target_accept=args.target_accept,
        max_treedepth=args.max_treedepth,
        init=args.init,
        parallel=args.parallel,
        timeout=args.timeout,
        progress=args.progress,
    )


COMMANDS = {"list": _cmd_list, "emit": _cmd_emit, "fit": _cmd_fit, "compare": _cmd_compare,
            "prior": _cmd_prior}


def _show_spec_warnings() -> None:
    """Print crossppl's own warnings (:class:`~crossppl.errors.SpecWarning`) as one line,
    ``crossppl: warning: ...``, without Python's source line; others as before."""
    import warnings

    from crossppl.errors import SpecWarning

    previous = warnings.showwarning
    if getattr(previous, "crossppl", False):
        return

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, SpecWarning):
            print(f"crossppl: warning: {message}", file=file or sys.stderr, flush=True)
        else:
            previous(message, category, filename, lineno, file, line)

    show.crossppl = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    _show_spec_warnings()
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserInputError as exc:
        print(f"crossppl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NotYetTranslated as exc:
        print(f"crossppl: not yet translated: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except EngineError as exc:
        print(f"crossppl: engine failed: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except CrossPPLError as exc:
        print(f"crossppl: error: {exc}", file=sys.stderr)
        return EXIT_BACKEND
    except KeyboardInterrupt:
        print("crossppl: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
