"""Program text that knows how tightly its outermost operator binds (for the text generators)."""

from __future__ import annotations

__all__ = ["ATOM", "Code", "paren"]

#: The strength of an atom (a name, a literal, a call): binds tighter than every operator.
ATOM = 100


class Code(str):
    """Source of an expression, with the binding strength of its outermost operator (each
    language numbers its operators below :data:`ATOM`, higher binding tighter)."""

    strength: int

    def __new__(cls, text: str, strength: int = ATOM) -> Code:
        obj = super().__new__(cls, text)
        obj.strength = strength
        return obj


def paren(code: str, strength: int) -> Code:
    """``code``, parenthesized unless its outermost operator binds at least as tightly."""
    own = getattr(code, "strength", ATOM)
    return Code(code, own) if own >= strength else Code(f"({code})")
