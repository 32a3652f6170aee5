"""Exceptions raised by crossppl.

Two families, kept apart on purpose (as ibis does):

* user errors (:class:`SpecError`, :class:`DataError`, :class:`ConfigError`): the input is wrong;
  the message names the file, the entry, what was found and the fix. The CLI prints them without
  a traceback and exits with code 2.
* :class:`SpecWarning`: the spec parses but is likely wrong; the CLI prints it as one line.
* translation and engine errors: :class:`NotYetTranslated` means crossppl has no rule for a
  construct in a backend (our gap); :class:`EngineError` means the PPL engine itself failed or
  cannot do what was asked (their limit).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "CrossPPLError",
    "DataError",
    "EngineError",
    "NotYetTranslated",
    "SpecError",
    "SpecWarning",
    "UserInputError",
]


class CrossPPLError(Exception):
    """Base class of every error crossppl raises on purpose.

    Every such error pickles and unpickles intact (its class, message and attributes), whatever
    its ``__init__`` takes, so that it crosses process boundaries (fit workers, the Stan host).
    """

    def __reduce__(self):
        return _rebuild, (type(self), self.args, self.__dict__.copy())


def _rebuild(cls: type, args: tuple, state: dict) -> CrossPPLError:
    """Unpickle a :class:`CrossPPLError` without calling its ``__init__``."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class UserInputError(CrossPPLError):
    """The user's input is wrong; the message says where and how to fix it.

    Parameters
    ----------
    message
        What was found and what to do.
    file
        The spec or data file concerned, if any.
    entry
        The spec entry (section and key) concerned, if any.
    line
        1-based line in ``file``, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        entry: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.entry = entry
        self.line = line
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.file:
            where = str(self.file)
            if self.line:
                where += f":{self.line}"
        if self.entry and not self.message.startswith(f"{self.entry} "):  # "draws must be ..."
            where = f"{where}: {self.entry}" if where else self.entry
        return f"{where}: {self.message}" if where else self.message


class SpecError(UserInputError):
    """A model spec is malformed, refers to unknown names, or is unsafe."""


class DataError(UserInputError):
    """Data is missing, has the wrong shape or type, or holds values the model cannot take."""


class ConfigError(UserInputError):
    """A fit option (chains, draws, seed, ...) has an invalid value."""


class SpecWarning(UserWarning):
    """A spec parses but is likely wrong (e.g. a scale whose distribution can be negative); the
    message names the file, the entry, what was found and the fix."""


class NotYetTranslated(CrossPPLError):
    """crossppl has no rule to write this IR construct for this backend (our gap)."""

    def __init__(self, backend: str, construct: str, hint: str = "") -> None:
        self.backend = backend
        self.construct = construct
        msg = f"the {backend} backend cannot yet translate {construct}"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)


class EngineError(CrossPPLError):
    """The PPL engine failed (compile error, sampler crash) or cannot do what was asked."""

    def __init__(self, backend: str, engine: str, message: str) -> None:
        self.backend = backend
        self.engine = engine
        super().__init__(f"{backend} ({engine}): {message}")
