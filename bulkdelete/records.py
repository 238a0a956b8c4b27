"""The audit's one schema: a typed record for every kind of line, one encoder, one decoder.

An audit is JSONL, one JSON object per line: ``run_started`` (the run's manifest), ``sending``
(a UID's first request is about to leave), one row outcome per input row (an ``outcome``, no
``event``; its request reference in ``ref``), ``batch_sending`` (a bulk call's UIDs are about to
leave), ``probed`` (what a permanent run's bulk probe found of UIDs its DELETE answered not
found), ``input_stopped``, ``input_read``, ``run_finished``;
a read-back writes ``check_started``, ``read_back`` and ``check_finished``. A record's fields, in
order, are its line's keys; the writer adds ``prev``, the chain's link, which belongs to the file.

Older audits decode: a field that a later version added has a default that says what an audit
without it meant. An event this version does not know (a later version's) decodes as
``OtherEvent``, which readers skip. Anything else (no JSON object, neither an event nor a row
outcome, a field missing or of the wrong type) raises ``RecordError``; readers name the line.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Self, TypeAlias

import orjson

from bulkdelete import typedjson
from bulkdelete.outcome import Call, Outcome, ReadBack
from bulkdelete.runrecords import (
    DEFAULT_CHAIN,
    Input,
    InputFile,
    InputStream,
    Manifest,
    Operator,
    RunSettings,
)
from bulkdelete.summary import RunStatus

# A run's own records are re-exported, so that every kind of line and value is named from here
# (mypy --strict re-exports what ``__all__`` lists); this module's own names are public as ever.
__all__ = [
    "DEFAULT_CHAIN",
    "Input",
    "InputFile",
    "InputStream",
    "Manifest",
    "Operator",
    "RunSettings",
]

if TYPE_CHECKING:
    from bulkdelete.settings import Settings

_NO_LINK: Final = object()  # the ``prev`` of a line that has none: equal to no link


class RecordError(Exception):
    """A line is not one bulkdelete wrote; the readers turn it into ``AuditError``."""


class NotJsonError(RecordError):
    """A line is not a JSON object at all: damaged or edited, not merely of another shape."""


@functools.lru_cache(maxsize=2)
def _second(whole: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


def timestamp() -> str:
    """Return the current time as RFC 3339 UTC with milliseconds, as every audit line carries."""
    now = time.time()
    whole = int(now)  # formatting the date costs more than the rest of a line: once a second
    return f"{_second(whole)}.{int((now - whole) * 1000):03d}Z"


class Location(str):
    """Where a row came from: an input (``-`` for stdin, ``uids`` for the library) and its line.

    It is the text the audit holds, ``file:line`` (``file`` alone for an input that failed
    before its first line): a ``str``, so orjson writes it as it is, with no call per line.
    """

    __slots__ = ()

    def __new__(cls, file: str, line: int | None = None) -> Self:
        return super().__new__(cls, file if line is None else f"{file}:{line}")

    @classmethod
    def parse(cls, text: str) -> Self:
        """Take the text of a location (a row's source, an audit's) as it is."""
        return str.__new__(cls, text)

    def parts(self) -> tuple[str, int | None]:
        """Return the file and the line; text that does not end in ``:<digits>`` has no line."""
        file, colon, line = self.rpartition(":")
        if colon and line.isascii() and line.isdigit():
            return file, int(line)
        return str(self), None


# --- the records ------------------------------------------------------------------------------
# Records are frozen and slotted but ``Sending`` and ``RowOutcome``, written per UID sent: frozen
# costs an ``object.__setattr__`` per field (0.9 us a row line), slotted makes orjson read field by
# field, 4-5x slower than ``__dict__``: together 8 % more instructions a delete (bench/cost.py).
# The writer encodes a record when it is written, so changing one later alters no line.


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted:
    """The first line of a delete run."""

    ts: str = field(default_factory=timestamp)
    run_id: str
    event: Literal["run_started"] = "run_started"
    version: str
    settings: RunSettings
    resumed: bool = False  # it continues the audit's last run (--resume)
    restart_of: str | None = None  # the run it starts over after (--restart)
    repaired_torn_tail_bytes: int
    operator: Operator | None = None  # absent from the line when None, as in a library run
    inputs: tuple[Input, ...] | None = None  # likewise


@dataclass(kw_only=True)
class Sending:
    """A UID's first request is about to leave (written before it does)."""

    ts: str = field(default_factory=timestamp)
    run_id: str
    event: Literal["sending"] = "sending"
    normalised_uid: str
    source: Location
    ref: str | None = None  # as in the row's line


@dataclass(kw_only=True)
class BatchSending:
    """A bulk call's UIDs are about to leave (written before its first request does).

    One line names every UID of the batch (as the audit names UIDs), the row each came from and
    its reference, in the same order: to a reader it is one ``Sending`` per UID (``each``).
    """

    ts: str = field(default_factory=timestamp)
    run_id: str
    event: Literal["batch_sending"] = "batch_sending"
    call: Call  # outcome.Call.BULK_DEACTIVATE or BULK_REACTIVATE
    normalised_uids: tuple[str, ...]
    sources: tuple[Location, ...]
    refs: tuple[str | None, ...] | None = None  # None: the run has no reference column

    def each(self) -> Iterator[Sending]:
        """Return the line as one ``Sending`` per UID, in order."""
        refs = self.refs or (None,) * len(self.normalised_uids)
        for uid, source, ref in zip(self.normalised_uids, self.sources, refs, strict=True):
            yield Sending(
                ts=self.ts, run_id=self.run_id, normalised_uid=uid, source=source, ref=ref
            )


@dataclass(kw_only=True)
class RowOutcome:
    """The final outcome of one input row."""

    ts: str = field(default_factory=timestamp)
    run_id: str
    uid: str  # as the input says it (or its pseudonym)
    normalised_uid: str | None  # None for an invalid row
    permanent: bool
    outcome: Outcome
    http_status: int | None
    error_code: str | None
    message: str | None
    attempts: int
    source: Location
    reason: str | None  # why an invalid row is invalid
    note: str | None
    ref: str | None = None  # the row's --ref-column value ("" when empty); None without one


@dataclass(frozen=True, slots=True, kw_only=True)
class Probed:
    """What a permanent run's bulk probe found of UIDs its DELETE called not found (as the
    audit names them), written before their row lines, which wait for it: see ``erasure``."""

    ts: str = field(default_factory=timestamp)
    run_id: str
    event: Literal["probed"] = "probed"
    absent: tuple[str, ...]
    deactivated: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class InputStopped:
    """The run stopped reading its input: ``code`` says why, ``source`` where."""

    ts: str = field(default_factory=timestamp)
    run_id: str
    event: Literal["input_stopped"] = "input_stopped"
    code: str
    source: Location
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InputRead:
    """What a run read of a stream: its rows, and the size and SHA-256 of the bytes read."""

    ts: str = field(default_factory=timestamp)
    run_id: str
    event: Literal["input_read"] = "input_read"
    name: str
    rows: int
    bytes: int
    sha256: str
    complete: bool  # False: the run stopped before the stream's end


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished:
    """The last line of a delete run: its totals (None: written before the field existed)."""

    ts: str = field(default_factory=timestamp)
    run_id: str
    event: Literal["run_finished"] = "run_finished"
    status: RunStatus
    totals: dict[str, int]  # outcome -> rows this run audited
    rows: int
    skipped: int | None = None
    unsent: int | None = None
    unanswered: int | None = None
    unread: int | None = None
    total: int | None = None
    requests: int
    duration_seconds: float
    fatal_code: str | None
    limit_per_minute: int | None = None  # the limit the server's headers advertised, if any


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckStarted:
    """The first line of a read-back."""

    ts: str = field(default_factory=timestamp)
    run_id: str
    event: Literal["check_started"] = "check_started"
    version: str
    settings: RunSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadBackResult:
    """What reading one deleted UID back found."""

    ts: str = field(default_factory=timestamp)
    run_id: str
    event: Literal["read_back"] = "read_back"
    normalised_uid: str
    result: ReadBack
    http_status: int | None
    error_code: str | None
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckFinished:
    """The last line of a read-back: its totals."""

    ts: str = field(default_factory=timestamp)
    run_id: str
    event: Literal["check_finished"] = "check_finished"
    totals: dict[str, int]  # read-back result -> UIDs
    unchecked: int
    requests: int
    duration_seconds: float
    fatal_code: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherEvent:
    """An event this version does not know, written by a later one: readers skip it."""

    ts: str | None = None
    run_id: str | None = None
    event: str


Record: TypeAlias = (
    RunStarted | Sending | BatchSending | RowOutcome | Probed | InputStopped | InputRead
    | RunFinished | CheckStarted | ReadBackResult | CheckFinished | OtherEvent
)  # fmt: skip
Start: TypeAlias = RunStarted | CheckStarted  # what opens a run's lines


# --- encoding ---------------------------------------------------------------------------------

_MANIFEST: Final = frozenset({"operator", "inputs"})


def encode(record: Record | Mapping[str, Any]) -> bytes:
    """Return a record as one JSON object, without a newline (the writer adds ``prev`` and it);
    plain mappings as they are (the writer's tests and benchmarks use them).
    """
    if type(record) is RunStarted and (record.operator is None or record.inputs is None):
        # A library run has no manifest: its line has no such keys, as it never had.
        fields = ((name, getattr(record, name)) for name in RunStarted.__dataclass_fields__)
        record = {k: v for k, v in fields if v is not None or k not in _MANIFEST}
    return orjson.dumps(record)


def run_settings(settings: Settings) -> RunSettings:
    """Return the record of a run's settings: ``Settings.public``, typed."""
    return _SCHEMA.build(RunSettings, settings.public(), "settings")


def input_read(run_id: str, facts: Mapping[str, object]) -> InputRead:
    """Return the ``input_read`` record of what a run read of a stream (``streaming.Feed``)."""
    return _SCHEMA.build(InputRead, {**facts, "ts": timestamp(), "run_id": run_id}, "input_read")


# --- decoding ---------------------------------------------------------------------------------


def _input(value: object, where: str) -> Input:
    if isinstance(value, dict) and value.get("streamed") is True:
        return _SCHEMA.build(InputStream, value, where)
    return _SCHEMA.build(InputFile, value, where)


def _inputs(value: object, where: str) -> tuple[Input, ...]:
    if not isinstance(value, list):
        raise typedjson.wrong(value, where, "a list")
    return tuple(_input(item, f"{where}[{n}]") for n, item in enumerate(value))


_SCHEMA: Final[typedjson.Schema] = typedjson.Schema(
    {
        "float | Literal['auto']": lambda value, where: (
            value if value == "auto" else typedjson.number(value, where)
        ),
        "Location": typedjson.text_as(Location.parse),
        "Outcome": typedjson.text_as(Outcome),
        "Call": typedjson.text_as(Call),
        "tuple[Location, ...]": lambda value, where: tuple(
            map(Location.parse, typedjson.texts(value, where))
        ),
        "RunStatus": typedjson.text_as(RunStatus),
        "ReadBack": typedjson.text_as(ReadBack),
        "RunSettings": lambda value, where: _SCHEMA.build(RunSettings, value, where),
        "Operator | None": lambda value, where: (
            None if value is None else _SCHEMA.build(Operator, value, where)
        ),
        "tuple[Input, ...] | None": typedjson.nullable(_inputs),
    }
)
_EVENTS: Final[Mapping[str, type[Record]]] = {
    str(kind.__dataclass_fields__["event"].default): kind
    for kind in (
        *(RunStarted, Sending, BatchSending, Probed, InputStopped, InputRead, RunFinished),
        *(CheckStarted, ReadBackResult, CheckFinished),
    )
}


def _load(line: bytes) -> dict[str, object]:
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise NotJsonError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise NotJsonError("not a JSON object")
    return raw


def _record(raw: dict[str, object]) -> Record:
    try:
        if "event" in raw:
            event = typedjson.TEXT(raw["event"], "event")
            return _SCHEMA.build(_EVENTS.get(event, OtherEvent), raw, event)
        if "outcome" in raw:
            return _SCHEMA.build(RowOutcome, raw, "row")
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"{type(exc).__name__}: {exc}") from None
    raise RecordError("neither an event nor a row outcome")


def decode(line: bytes) -> Record:
    """Return the record one audit line holds (``prev`` aside); raise ``RecordError`` if none."""
    return _record(_load(line))


def decode_linked(line: bytes) -> tuple[Record, object]:
    """Return the record one audit line holds and its ``prev``, as found (or a value no link
    equals, when it has none)."""
    raw = _load(line)
    return _record(raw), raw.get("prev", _NO_LINK)
