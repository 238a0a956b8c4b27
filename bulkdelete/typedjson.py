"""Typed values from decoded JSON: a frozen dataclass built field by field, every type checked.

A ``Schema`` reads each field of a dataclass with the reader of its annotation, as text (what
``from __future__ import annotations`` leaves): the plain JSON types are built in, a caller adds
its own (an enum, a nested dataclass). A field with a default may be missing from the object (an
older writer did not know it); a field without one may not (a ``default_factory`` is for new
values, not a default on disk). A field typed ``Literal[...]`` is not read: it tells the kind of
object, and the caller chose the kind already. A wrong type raises ``TypeError`` and a missing
field ``KeyError``, each naming where in the object it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

Reader = Callable[[object, str], Any]  # (a value, where it is) -> the field's value
_T = TypeVar("_T")
_Plan = tuple[tuple[str, Reader, object], ...]  # per field: name, reader, default or MISSING


def wrong(value: object, where: str, wanted: str) -> TypeError:
    """Return the error for ``value`` at ``where``, which should be ``wanted``."""
    return TypeError(f"{where} is {type(value).__name__}, not {wanted}")


def plain(kind: type, wanted: str) -> Reader:
    """Return a reader that accepts only ``kind`` (a bool is no int here, unlike in Python)."""

    def read(value: object, where: str) -> object:
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
            raise wrong(value, where, wanted)
        return value

    return read


def nullable(read: Reader) -> Reader:
    """Return a reader that accepts null too."""
    return lambda value, where: None if value is None else read(value, where)


def text_as(kind: Callable[[str], object]) -> Reader:
    """Return a reader of a string that ``kind`` turns into a value (an enum, say)."""
    return lambda value, where: kind(TEXT(value, where))


def number(value: object, where: str) -> float:
    """Read an integer or a float as a float (JSON writes 2.0 as 2 in some writers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong(value, where, "a number")
    return float(value)


def _counts(value: object, where: str) -> dict[str, int]:
    if not isinstance(value, dict) or any(
        isinstance(n, bool) or not isinstance(n, int) for n in value.values()
    ):
        raise wrong(value, where, "an object of counts")
    return value


TEXT: Final = plain(str, "a string")
_INTEGER: Final = plain(int, "an integer")


def texts(value: object, where: str) -> tuple[str, ...]:
    """Read a list of strings."""
    if not isinstance(value, list):
        raise wrong(value, where, "a list")
    return tuple(TEXT(item, f"{where}[{n}]") for n, item in enumerate(value))


def _texts_or_nulls(value: object, where: str) -> tuple[str | None, ...]:
    if not isinstance(value, list):
        raise wrong(value, where, "a list")
    return tuple(
        None if item is None else TEXT(item, f"{where}[{n}]") for n, item in enumerate(value)
    )


BASIC: Final[Mapping[str, Reader]] = {
    "str": TEXT,
    "str | None": nullable(TEXT),
    "int": _INTEGER,
    "int | None": nullable(_INTEGER),
    "bool": plain(bool, "true or false"),
    "float": number,
    "float | None": nullable(number),
    "dict[str, int]": _counts,
    "tuple[str, ...]": texts,
    "tuple[str | None, ...] | None": nullable(_texts_or_nulls),
}


class Schema:
    """Builds dataclasses from JSON objects with ``BASIC`` and the readers it is given."""

    __slots__ = ("_plans", "_readers")

    def __init__(self, readers: Mapping[str, Reader]) -> None:
        self._readers = {**BASIC, **readers}
        self._plans: dict[type, _Plan] = {}

    def _plan(self, kind: type[Any]) -> _Plan:
        """Return how to read each field of ``kind`` (worked out once per class)."""
        if (known := self._plans.get(kind)) is not None:
            return known
        plan = tuple(
            (f.name, self._readers[str(f.type)], f.default)
            for f in dataclasses.fields(kind)
            if not str(f.type).startswith("Literal[")
        )
        self._plans[kind] = plan
        return plan

    def build(self, kind: type[_T], value: object, where: str) -> _T:
        """Return a ``kind`` built from the JSON object ``value``, found at ``where``."""
        if not isinstance(value, dict):
            raise wrong(value, where, "an object")
        fields = {}
        for name, read, default in self._plan(kind):
            if name in value:
                fields[name] = read(value[name], f"{where}.{name}")
            elif default is dataclasses.MISSING:
                raise KeyError(f"{where}.{name}")
            else:
                fields[name] = default
        return kind(**fields)
