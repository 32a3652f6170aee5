"""Named-dim alignment for array languages that broadcast NumPy-style (PyMC, NumPyro)."""

from __future__ import annotations

__all__ = ["align"]


def align(code: str, src: tuple[str, ...], dst: tuple[str, ...], *, atomic: bool = True) -> str:
    """Index ``code`` (an array laid out as dims ``src``) so it broadcasts against ``dst``.

    ``src`` must be a subset of ``dst``. Axes are transposed into ``dst``'s order when needed and
    ``None`` is inserted for dims ``src`` lacks; leading ``None`` and trailing ``:`` are left out,
    as a person would write them (``alpha[:, None]``, not ``alpha[:, None]`` for the last dim).
    ``atomic`` says whether ``code`` can be indexed without parentheses.
    """
    if not src:
        return code
    missing = [d for d in src if d not in dst]
    if missing:
        raise ValueError(f"dims {missing} of {code!r} are not in the target dims {dst}")
    order = tuple(d for d in dst if d in src)
    if order != src:
        perm = ", ".join(str(src.index(d)) for d in order)
        code = f"{code}.T" if len(src) == 2 and atomic else f"({code}).transpose({perm})"
        atomic = True
    first = dst.index(order[0])
    idx = [":" if d in src else "None" for d in dst[first:]]
    while idx and idx[-1] == ":":
        idx.pop()
    if not idx:
        return code
    return f"{code if atomic else f'({code})'}[{', '.join(idx)}]"
