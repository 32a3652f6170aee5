"""Run generated Python modules: the source that ``emit`` prints is the source that runs."""

from __future__ import annotations

import linecache
import types

from .base import program_hash

__all__ = ["load_module"]


def load_module(source: str, name: str) -> types.ModuleType:
    """Execute generated module ``source`` and return it as a module.

    The source is registered with :mod:`linecache` under a ``<crossppl:...>`` file name, so
    tracebacks from inside a generated program show its lines. Only crossppl's own generated
    source (built from a validated IR) is ever passed here; spec strings never are.
    """
    filename = f"<crossppl:{name}:{program_hash(source)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"crossppl_generated_{name}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    return module
