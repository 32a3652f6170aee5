"""The immutable intermediate representation (IR) of a model.

Every expression node carries ``dims``: the named dimensions of its value, in the order in which
a backend lays the value out in memory. Broadcasting is by name: a binary operation's dims are the
union of its operands' dims in the model's declaration order, and each backend aligns every leaf
to the dims of the statement it appears in (see ``crossppl.backends.layout``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

__all__ = [
    "BINARY_OPS",
    "FUNCTIONS",
    "Binary",
    "Call",
    "Const",
    "DataDecl",
    "DerivedDecl",
    "DimDecl",
    "Dist",
    "Expr",
    "GeneratedDecl",
    "Index",
    "Model",
    "ObservedDecl",
    "ParamDecl",
    "Role",
    "Unary",
    "Var",
    "walk",
]

#: Binary operators of the expression language, by IR name.
BINARY_OPS = ("add", "sub", "mul", "div", "pow")

#: Functions of the expression language and their number of arguments.
FUNCTIONS: dict[str, int] = {
    "exp": 1,
    "log": 1,
    "sqrt": 1,
    "inv_logit": 1,
    "logit": 1,
    "pow": 2,
    "abs": 1,
}


class Role(StrEnum):
    """What a name refers to."""

    DATA = "data"
    PARAM = "param"
    DERIVED = "derived"
    GENERATED = "generated"


@dataclass(frozen=True, slots=True)
class Const:
    """A numeric literal."""

    value: float | int
    dims: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Var:
    """A reference to a data variable, parameter or derived quantity."""

    name: str
    role: Role
    dims: tuple[str, ...]
    integer: bool = False


@dataclass(frozen=True, slots=True)
class Index:
    """``base[index]``: gather ``base`` along its first dim with 0-based integer data ``index``."""

    base: Var
    index: Var
    dims: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unary:
    """Unary minus (``op == "neg"``)."""

    op: str
    operand: Expr
    dims: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Binary:
    """``left <op> right`` with ``op`` in :data:`BINARY_OPS`, broadcast by dim name."""

    op: str
    left: Expr
    right: Expr
    dims: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Call:
    """A call of one of :data:`FUNCTIONS`, elementwise, broadcast by dim name."""

    func: str
    args: tuple[Expr, ...]
    dims: tuple[str, ...]


Expr = Const | Var | Index | Unary | Binary | Call


@dataclass(frozen=True, slots=True)
class Dist:
    """A distribution: a row of the distribution table and its arguments.

    ``args`` hold the arguments by the parameter names of ``parameterization`` (a key of the row's
    parameterizations), in the row's order.
    """

    name: str
    parameterization: str
    args: tuple[tuple[str, Expr], ...]
    dims: tuple[str, ...]

    def arg(self, name: str) -> Expr:
        """Return the argument called ``name``."""
        return dict(self.args)[name]


@dataclass(frozen=True, slots=True)
class DimDecl:
    """A named dimension with its size and coordinate labels."""

    name: str
    size: int
    coords: tuple = ()


@dataclass(frozen=True, slots=True, eq=False)
class DataDecl:
    """Data: ``kind`` is ``"real"``, ``"int"`` or ``"index"`` (0-based into dim ``indexes``)."""

    name: str
    dims: tuple[str, ...]
    kind: str
    value: np.ndarray = field(repr=False)
    indexes: str | None = None
    base: int = 0


@dataclass(frozen=True, slots=True)
class ParamDecl:
    """A parameter ``name[dims] ~ dist`` (sampled by NUTS, so its distribution is continuous)."""

    name: str
    dims: tuple[str, ...]
    dist: Dist


@dataclass(frozen=True, slots=True)
class DerivedDecl:
    """A derived quantity ``name = expr``: deterministic, recorded in the posterior."""

    name: str
    dims: tuple[str, ...]
    expr: Expr


@dataclass(frozen=True, slots=True)
class ObservedDecl:
    """A likelihood term: data ``name[dims] ~ dist``."""

    name: str
    dims: tuple[str, ...]
    dist: Dist


@dataclass(frozen=True, slots=True)
class GeneratedDecl:
    """A posterior-predictive quantity ``name[dims] ~ dist``: drawn afresh for every posterior
    draw (Stan's generated quantities), never sampled by NUTS nor part of the log density."""

    name: str
    dims: tuple[str, ...]
    dist: Dist


Statement = ParamDecl | DerivedDecl


@dataclass(frozen=True, slots=True, eq=False)
class Model:
    """A parsed, validated model.

    ``statements`` hold parameters and derived quantities in an order where every name is
    defined before it is used (the spec's order where possible); ``generated`` holds the
    posterior-predictive quantities in spec order, and ``fit`` the spec's recommended sampler
    settings (``FitConfig`` field -> value), which a user's explicit settings override.
    """

    name: str
    description: str
    source: str
    dims: tuple[DimDecl, ...]
    data: tuple[DataDecl, ...]
    statements: tuple[Statement, ...]
    observed: tuple[ObservedDecl, ...]
    path: str = ""
    generated: tuple[GeneratedDecl, ...] = ()
    fit: tuple[tuple[str, object], ...] = ()

    @property
    def parameters(self) -> tuple[ParamDecl, ...]:
        """Parameters in definition order."""
        return tuple(s for s in self.statements if isinstance(s, ParamDecl))

    @property
    def derived(self) -> tuple[DerivedDecl, ...]:
        """Derived quantities in definition order."""
        return tuple(s for s in self.statements if isinstance(s, DerivedDecl))

    def dim(self, name: str) -> DimDecl:
        """Return the declaration of dim ``name``."""
        return next(d for d in self.dims if d.name == name)

    def datum(self, name: str) -> DataDecl:
        """Return the declaration of data variable ``name``."""
        return next(d for d in self.data if d.name == name)

    @property
    def coords(self) -> dict[str, list]:
        """Coordinate labels of every dim (``0..size-1`` when none were given)."""
        return {
            d.name: list(d.coords) if d.coords else list(range(d.size)) for d in self.dims
        }

    @property
    def recorded(self) -> tuple[ParamDecl | DerivedDecl | GeneratedDecl, ...]:
        """Every quantity recorded in the posterior: parameters, derived, generated."""
        return (*self.statements, *self.generated)

    @property
    def observed_names(self) -> tuple[str, ...]:
        """Names of the data variables that are observed."""
        return tuple(o.name for o in self.observed)

    def used_names(self) -> set[str]:
        """Every name referenced by a distribution or expression of the model."""
        names: set[str] = set()
        for stmt in (*self.statements, *self.observed, *self.generated):
            root = stmt.expr if isinstance(stmt, DerivedDecl) else stmt.dist
            for node in walk(root):
                if isinstance(node, Var):
                    names.add(node.name)
        return names


def walk(node: Expr | Dist):
    """Yield ``node`` and all its sub-expressions, depth first."""
    yield node
    if isinstance(node, Dist):
        children: tuple = tuple(a for _, a in node.args)
    elif isinstance(node, Index):
        children = (node.base, node.index)
    elif isinstance(node, Unary):
        children = (node.operand,)
    elif isinstance(node, Binary):
        children = (node.left, node.right)
    elif isinstance(node, Call):
        children = node.args
    else:
        children = ()
    for child in children:
        yield from walk(child)
