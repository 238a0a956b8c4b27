"""The audit's one schema: a typed record for every kind of line, one encoder, one decoder.

An audit is JSONL, one JSON object per line. A run-level line names its kind in ``event``; a
row's line has an ``outcome`` instead:

- ``run_started`` (``RunStarted``): a delete run's manifest: the version, its settings, whether
  it resumes or restarts the audit's last run, the torn tail it cut off, and for a CLI run the
  operator and every input (a file by its SHA-256, a stream as streamed).
- ``sending`` (``Sending``): a UID's first request is about to leave; its fate is unknown until
  its row's line.
- a row outcome (``RowOutcome``): one per input row, its ``Outcome`` and what the server said.
- ``input_stopped`` (``InputStopped``): the run stopped reading its input, and why.
- ``input_read`` (``InputRead``): what the run read of a stream (stdin), at its end.
- ``run_finished`` (``RunFinished``): the run's totals.
- ``check_started``, ``read_back``, ``check_finished``: a read-back (``bulkdelete check``).

Each record's fields, in their order, are the line's keys; the audit writer adds ``prev``, the
hash chain's link, which belongs to the file, not to a record. A row's ``source`` is a
``Location``, on disk the string ``file:line``.

Older audits decode: a field that a later version added has a default that says what an audit
without it meant (not resumed, no proxy, no key id...). An event this version does not know (a
later version's) decodes as ``OtherEvent``, which readers skip. Anything else (a line that is no
JSON object, neither an event nor a row outcome, or a known kind with a field missing or of the
wrong type) raises ``RecordError``; readers name the file and line.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, TypeAlias, TypeVar

import orjson

from bulkdelete.outcome import Outcome, ReadBack
from bulkdelete.summary import RunStatus

if TYPE_CHECKING:
    from bulkdelete.rows import FileScan
    from bulkdelete.settings import Settings

DEFAULT_CHAIN: Final = "sha256"  # ``audit_chain`` of a run whose lines are linked by SHA-256
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
    whole = int(now)
    # Formatting the date costs more than the rest of a line: it is done once per second.
    return f"{_second(whole)}.{int((now - whole) * 1000):03d}Z"


class Location(NamedTuple):
    """Where a row came from: an input (``-`` for stdin, ``uids`` for the library) and its line.

    On disk it is ``file:line``, or just ``file`` for an input that failed before its first
    line. A named tuple, not a dataclass: orjson would write a dataclass as an object.
    """

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"

    @classmethod
    def parse(cls, text: str) -> Location:
        """Read ``file:line`` back; text that does not end in ``:<digits>`` has no line."""
        file, colon, line = text.rpartition(":")
        if colon and line.isascii() and line.isdigit():
            return cls(file, int(line))
        return cls(text)


# --- the records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """A run's effective settings, as ``Settings.public`` gives them: never the key."""

    base_url: str
    target: str
    permanent: bool
    rate: float | Literal["auto"]
    max_share: float | None = None  # None: written before --max-share existed
    concurrency: int
    max_attempts: int
    max_retry_time: float
    timeout: float
    max_outage: float | None = None  # None: written before --max-outage existed
    column: str | None
    no_header: bool = False
    ca_bundle: str | None
    audit_chain: str = DEFAULT_CHAIN
    audit_key_id: str | None = None
    uid_hash: bool = False
    proxy: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Operator:
    """Who ran a run: the login name and the host."""

    user: str
    host: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InputFile:
    """An input file of a run, by its SHA-256, read whole before the run started."""

    name: str  # as the run's rows name it
    rows: int
    sha256: str
    bytes: int | None = None  # None: written by a demo run before it was recorded
    column: str | None = None  # the column read; None: no header, or written before it was told

    @classmethod
    def of(cls, scanned: FileScan) -> InputFile:
        """Describe a file as ``rows.scan`` found it."""
        return cls(
            name=scanned.name,
            rows=scanned.rows,
            sha256=scanned.sha256,
            bytes=scanned.byte_size,
            column=scanned.layout.column,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class InputStream:
    """An input a run read as it came (stdin): its size and hash are in its ``InputRead``."""

    name: str
    streamed: Literal[True] = True
    column: str | None = None


Input: TypeAlias = InputFile | InputStream


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a CLI run records of who ran it and what it read; a library run has neither."""

    operator: Operator | None = None
    inputs: tuple[Input, ...] | None = None


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Sending:
    """A UID's first request is about to leave (written before it does)."""

    ts: str = field(default_factory=timestamp)
    run_id: str
    event: Literal["sending"] = "sending"
    normalised_uid: str
    source: Location


@dataclass(frozen=True, slots=True, kw_only=True)
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
    RunStarted
    | Sending
    | RowOutcome
    | InputStopped
    | InputRead
    | RunFinished
    | CheckStarted
    | ReadBackResult
    | CheckFinished
    | OtherEvent
)
Start: TypeAlias = RunStarted | CheckStarted  # what opens a run's lines


# --- encoding ---------------------------------------------------------------------------------

_MANIFEST: Final = frozenset({"operator", "inputs"})


def _location(value: object) -> str:
    if type(value) is Location:
        return str(value)
    raise TypeError(f"{type(value).__name__} is not part of an audit line")


def encode(record: Record | Mapping[str, Any]) -> bytes:
    """Return a record as one JSON object, without a newline (the writer adds ``prev`` and it).

    Plain mappings are written as they are: the writer's tests and benchmarks use them.
    """
    if type(record) is RunStarted and (record.operator is None or record.inputs is None):
        # A library run has no manifest: its line has no such keys, as it never had.
        present = {
            name: value
            for name in RunStarted.__dataclass_fields__
            if (value := getattr(record, name)) is not None or name not in _MANIFEST
        }
        return orjson.dumps(present, default=_location)
    return orjson.dumps(record, default=_location)


def run_settings(settings: Settings) -> RunSettings:
    """Return the record of a run's settings: ``Settings.public``, typed."""
    return _object(RunSettings, settings.public(), "settings")


def input_read(run_id: str, facts: Mapping[str, object]) -> InputRead:
    """Return the ``input_read`` record of what a run read of a stream (``streaming.Feed``)."""
    return _object(InputRead, {**facts, "ts": timestamp(), "run_id": run_id}, "input_read")


# --- decoding ---------------------------------------------------------------------------------
#
# Each field is read by the reader of its annotation. A field with a default may be missing
# (an older version did not write it); ``ts`` has only a factory, for new records: it may not.

_Reader = Callable[[object, str], Any]  # (the value, where it is) -> the field's value
_R = TypeVar("_R")


def _wrong(value: object, where: str, wanted: str) -> TypeError:
    return TypeError(f"{where} is {type(value).__name__}, not {wanted}")


def _plain(kind: type, wanted: str, *, nullable: bool = False) -> _Reader:
    def read(value: object, where: str) -> object:
        if value is None and nullable:
            return None
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
            raise _wrong(value, where, wanted)
        return value

    return read


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(value, where, "a number")
    return float(value)


def _counts(value: object, where: str) -> dict[str, int]:
    if not isinstance(value, dict) or any(
        isinstance(n, bool) or not isinstance(n, int) for n in value.values()
    ):
        raise _wrong(value, where, "an object of counts")
    return value


def _inputs(value: object, where: str) -> tuple[Input, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _wrong(value, where, "a list")
    return tuple(_input(item, f"{where}[{n}]") for n, item in enumerate(value))


def _input(value: object, where: str) -> Input:
    if isinstance(value, dict) and value.get("streamed") is True:
        return _object(InputStream, value, where)
    return _object(InputFile, value, where)


_TEXT: Final = _plain(str, "a string")
_READERS: Final[Mapping[str, _Reader]] = {
    "str": _TEXT,
    "str | None": _plain(str, "a string or null", nullable=True),
    "int": _plain(int, "an integer"),
    "int | None": _plain(int, "an integer or null", nullable=True),
    "bool": _plain(bool, "true or false"),
    "float": _number,
    "float | None": lambda value, where: None if value is None else _number(value, where),
    "float | Literal['auto']": lambda value, where: (
        value if value == "auto" else _number(value, where)
    ),
    "dict[str, int]": _counts,
    "Location": lambda value, where: Location.parse(_TEXT(value, where)),
    "Outcome": lambda value, where: Outcome(_TEXT(value, where)),
    "RunStatus": lambda value, where: RunStatus(_TEXT(value, where)),
    "ReadBack": lambda value, where: ReadBack(_TEXT(value, where)),
    "RunSettings": lambda value, where: _object(RunSettings, value, where),
    "Operator | None": lambda value, where: (
        None if value is None else _object(Operator, value, where)
    ),
    "tuple[Input, ...] | None": _inputs,
}


_Plan = tuple[tuple[str, _Reader, object], ...]  # per field: name, reader, default or MISSING
_PLANS: Final[dict[type, _Plan]] = {}


def _plan(kind: type[Any]) -> _Plan:
    """Return how to read each field of a record class (worked out once per class)."""
    if (known := _PLANS.get(kind)) is not None:
        return known
    plan = []
    for f in dataclasses.fields(kind):
        if str(f.type).startswith("Literal["):
            continue  # ``event`` or ``streamed``: they told the kind already
        plan.append((f.name, _READERS[str(f.type)], f.default))
    _PLANS[kind] = tuple(plan)
    return _PLANS[kind]


def _object(kind: type[_R], value: object, where: str) -> _R:
    if not isinstance(value, dict):
        raise _wrong(value, where, "an object")
    fields = {}
    for name, read, default in _plan(kind):
        if name in value:
            fields[name] = read(value[name], f"{where}.{name}")
        elif default is MISSING:
            raise KeyError(f"{where}.{name}")
        else:
            fields[name] = default
    return kind(**fields)


_EVENTS: Final[Mapping[str, type[Record]]] = {
    str(kind.__dataclass_fields__["event"].default): kind
    for kind in (
        *(RunStarted, Sending, InputStopped, InputRead, RunFinished),
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
            event = _TEXT(raw["event"], "event")
            kind = _EVENTS.get(event, OtherEvent)
            return _object(kind, raw, event)
        if "outcome" in raw:
            return _object(RowOutcome, raw, "row")
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
