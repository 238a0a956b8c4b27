"""Audit verification: the hash chain, run manifests and one final outcome per input row.

The audits are written by real runs, in process, against the fake CometChat server: a run
stopped part-way and then killed (its run_finished line cut off, a torn tail left behind), a
resumed run stopped again, a resume to the end and a resume with nothing left to do.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import API_KEY, Lines, duplicate_line, move_line, remove_line, tampers

from bulkdelete.audit import Pseudonyms, link
from bulkdelete.evidence import verify
from bulkdelete.fake import FakeConfig, FakeServer
from bulkdelete.launch import manifest_inputs
from bulkdelete.records import Manifest
from bulkdelete.resume import Resume, load_resume_index
from bulkdelete.rows import Row, Source, read_rows, scan
from bulkdelete.run import run_delete
from bulkdelete.settings import Secret, Settings
from bulkdelete.verification import Finding, Verification, verification_text

UIDS = [f"user-{n:03d}" for n in range(80)]
EXISTING = frozenset(UIDS[:70])  # the rest are answered not found
KEY = b"audit-key-5e1d"


@dataclasses.dataclass(frozen=True)
class Recorded:
    """Audits written by real runs, and the input they read."""

    source: Path
    clean: Path  # four runs: killed, stopped, completed, nothing left
    keyed: Path  # an unkeyed run stopped part-way, then a keyed resume
    killed_only: Path  # the killed first run alone: rows without an outcome
    twice: Path  # the same input deleted twice, the second time without resuming
    failing: Path  # two rows deleted, then the key revoked: the third failed, the run aborted
    restarted: Path  # a run stopped part-way, a --restart stopped too, a resume of the restart


def _write_input(path: Path) -> Path:
    rows = ["uid,email", *(f"{uid},{uid}@example.com" for uid in UIDS), "bad/one,x", "USER-004,y"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


async def _run(
    server: FakeServer,
    source: Path,
    audit: Path,
    *,
    stop_after: int | None = None,
    resume: bool = False,
    restart: bool = False,
    key: str | None = None,
    **settings_overrides: int,
) -> None:
    """Run a real delete of ``source`` into ``audit``; stop after ``stop_after`` rows."""
    # One DELETE per user: the recordings stop, revoke keys and restart between single requests.
    options: dict[str, Any] = {
        "rate": 5000,
        "concurrency": 4,
        "batch_size": 1,
        **settings_overrides,
    }
    settings = Settings(
        base_url=server.base_url,
        api_key=Secret(API_KEY),
        audit_path=audit,
        audit_key=Secret(key) if key else None,
        **options,
    )
    sources = [Source.file(source)]
    scanned = scan(sources, column=None)
    manifest = Manifest(inputs=manifest_inputs(sources, scanned))
    stop = asyncio.Event()

    def rows() -> Iterator[Row]:
        for number, row in enumerate(read_rows(sources, column=None)):
            if number == stop_after:
                stop.set()
            yield row

    plan = None
    if resume or restart:
        hashes = {f.name: f.sha256 for f in scanned.files}
        index = load_resume_index(audit)
        plan = Resume(
            index=index,
            file_hashes=hashes,
            pseudonyms=Pseudonyms.of_run(settings),
            restart_of=index.last_run if restart else None,
        )
    await run_delete(settings, rows(), stop=stop, manifest=manifest, resume=plan, stop_grace=5)


def _kill_last_run(audit: Path) -> None:
    """Cut the run_finished line off and leave a torn tail, as kill -9 mid-write would."""
    lines = audit.read_bytes().splitlines(keepends=True)
    assert b'"run_finished"' in lines[-1]
    audit.write_bytes(b"".join(lines[:-1]) + b'{"ts":"2026-')


async def _record(root: Path) -> Recorded:
    source = _write_input(root / "users.csv")
    names = ("clean", "keyed", "killed_only", "twice", "failing", "restarted")
    audits = {name: root / f"{name}.jsonl" for name in names}
    async with FakeServer(FakeConfig(api_key=API_KEY, users=EXISTING)) as server:
        clean = audits["clean"]
        await _run(server, source, clean, stop_after=20)
        _kill_last_run(clean)
        audits["killed_only"].write_bytes(clean.read_bytes())
        await _run(server, source, clean, stop_after=50, resume=True)
        await _run(server, source, clean, resume=True)
        await _run(server, source, clean, resume=True)
    async with FakeServer(FakeConfig(api_key=API_KEY, users=EXISTING)) as server:
        await _run(server, source, audits["keyed"], stop_after=30)
        await _run(server, source, audits["keyed"], resume=True, key=KEY.decode())
    async with FakeServer(FakeConfig(api_key=API_KEY, users=EXISTING)) as server:
        await _run(server, source, audits["twice"])
        await _run(server, source, audits["twice"])
    async with FakeServer(FakeConfig(api_key=API_KEY, users=EXISTING)) as server:
        await _run(server, source, audits["restarted"], stop_after=20)
        await _run(server, source, audits["restarted"], stop_after=40, restart=True)
        await _run(server, source, audits["restarted"], resume=True)
    revoking = FakeConfig(api_key=API_KEY, users=EXISTING, revoke_key_after=2)
    async with FakeServer(revoking) as server:
        await _run(server, source, audits["failing"], concurrency=1)
    return Recorded(source=source, **audits)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """Write the audits once for the whole module."""
    return asyncio.run(_record(tmp_path_factory.mktemp("audits")))


def _lines(path: Path) -> Lines:
    return path.read_bytes().splitlines(keepends=True)


def _rechain(lines: Lines) -> Lines:
    """Recompute every unkeyed link, as anyone can who rewrites an audit without a key."""
    out: Lines = []
    prev: str | None = None
    for line in lines:
        body = orjson.dumps({**orjson.loads(line), "prev": prev})
        out.append(body + b"\n")
        prev = link(body, None)
    return out


def _tampered(tmp_path: Path, lines: Lines) -> Path:
    copy = tmp_path / "tampered.jsonl"
    copy.write_bytes(b"".join(lines))
    return copy


def _middle_outcome(lines: Lines) -> int:
    """Return the index of a deleted-row line near the middle of the audit, not the last."""
    return next(n for n in range(len(lines) // 2, len(lines)) if b'"outcome":"deleted"' in lines[n])


def _final_lines(audit: Path, uid: str) -> str:
    """Return the 1-based lines where ``uid`` was deleted or not found, as a finding lists them."""
    return ", ".join(
        str(n)
        for n, line in enumerate(_lines(audit), start=1)
        if orjson.loads(line).get("normalised_uid") == uid
        and orjson.loads(line).get("outcome") in {"deleted", "not_found"}
    )


def _first(v: Verification) -> Finding:
    assert not v.ok, verification_text(v)
    return v.findings[0]


# --- a clean audit ----------------------------------------------------------------------------


def test_clean_multi_run_audit_passes(recorded: Recorded) -> None:
    """Killed, stopped, resumed and idle runs verify: chain, manifests and every row."""
    lines = _lines(recorded.clean)

    v = verify([recorded.clean], inputs=[recorded.source])

    assert (v.ok, v.findings, v.runs, v.rows_checked) == (True, (), 4, 82)
    assert v.lines == len(lines)
    assert v.head == link(lines[-1].removesuffix(b"\n"), None)
    assert [n for n in v.notes if "no run_finished" in n] == [
        f"{recorded.clean}:1: run {orjson.loads(lines[0])['run_id']} has no run_finished "
        "line: it was killed (or its last lines removed)"
    ]
    assert verification_text(v).startswith("PASS: ")


def test_without_inputs_only_the_chain_and_runs_are_checked(recorded: Recorded) -> None:
    """With no input files the audit passes on its own and says what was not checked."""
    v = verify([recorded.clean])

    assert (v.ok, v.rows_checked) == (True, 0)
    assert any("no input files given" in note for note in v.notes)


def test_head_changes_when_a_line_is_appended_or_cut(recorded: Recorded, tmp_path: Path) -> None:
    """The head commits to the end of the file: cutting the last line changes it."""
    lines = _lines(recorded.clean)
    head = verify([recorded.clean]).head

    cut = verify([_tampered(tmp_path, lines[:-1])])

    assert cut.ok
    assert head is not None
    assert cut.head not in {None, head}


# --- one line edited, removed, duplicated or moved --------------------------------------------


def _edit(lines: Lines, k: int) -> Lines:
    return [*lines[:k], lines[k].replace(b'"attempts":1', b'"attempts":2'), *lines[k + 1 :]]


TAMPERS = tampers(_edit)


@pytest.mark.parametrize("how", TAMPERS)
def test_one_tampered_line_fails_naming_the_line(
    recorded: Recorded, tmp_path: Path, how: str
) -> None:
    """Editing, removing, duplicating or moving a middle line names the first broken line."""
    lines = _lines(recorded.clean)
    k = _middle_outcome(lines)
    change, offset = TAMPERS[how]
    tampered = change(lines, k)
    assert tampered != lines

    v = verify([_tampered(tmp_path, tampered)], inputs=[recorded.source])

    first = _first(v)
    assert (first.path, first.line) == (str(tmp_path / "tampered.jsonl"), k + 1 + offset)
    assert "prev" in first.problem
    assert verification_text(v).startswith(
        f"FAIL: {tmp_path / 'tampered.jsonl'}:{k + 1 + offset}: "
    )


def _edit_time(lines: Lines, k: int) -> Lines:
    return [*lines[:k], lines[k].replace(b'"ts":"2', b'"ts":"3', 1), *lines[k + 1 :]]


def test_every_single_line_tamper_is_caught_where_it_happens(
    recorded: Recorded, tmp_path: Path
) -> None:
    """At every position but the last line, each kind of tamper fails at the line expected.

    A last line edited or removed leaves no later line to notice: the head is what shows it.
    """
    lines = _lines(recorded.clean)
    kinds = [(_edit_time, 1), (remove_line, 0), (duplicate_line, 1), (move_line, 0)]
    missed = []
    for change, offset in kinds:
        for k in range(len(lines) - 2):
            path = _tampered(tmp_path, change(lines, k))
            findings = verify([path]).findings
            if not findings or findings[0].line != k + 1 + offset:
                missed.append((change.__name__, k, findings[:1]))

    assert missed == []


def test_an_edited_prev_link_is_named(recorded: Recorded, tmp_path: Path) -> None:
    """A line whose own prev was changed is the line named."""
    lines = _lines(recorded.clean)
    k = _middle_outcome(lines)
    record = orjson.loads(lines[k])
    record["prev"] = "0" * 64
    lines[k] = orjson.dumps(record) + b"\n"

    first = _first(verify([_tampered(tmp_path, lines)]))

    assert (first.line, first.problem.startswith(f"prev does not match line {k}")) == (k + 1, True)


def test_a_removed_first_line_is_named(recorded: Recorded, tmp_path: Path) -> None:
    """Without its first line, a file's new first line links to something: line 1 is named."""
    first = _first(verify([_tampered(tmp_path, _lines(recorded.clean)[1:])]))

    assert (first.line, "first line must have prev null" in first.problem) == (1, True)


def test_a_duplicate_is_told_by_where_its_link_points(recorded: Recorded, tmp_path: Path) -> None:
    """A copied line links to the line before its original, and the finding says so."""
    lines = _lines(recorded.clean)
    k = _middle_outcome(lines)

    first = _first(verify([_tampered(tmp_path, [*lines[: k + 1], lines[k], *lines[k + 1 :]])]))

    assert first.problem.startswith(f"prev links to line {k}, not to line {k + 1} just before it")


def test_a_line_that_is_not_json_is_named(recorded: Recorded, tmp_path: Path) -> None:
    """A damaged line is a finding of its own, not a crash."""
    lines = _lines(recorded.clean)
    lines[3] = b'{"ts": broken\n'

    first = _first(verify([_tampered(tmp_path, lines)]))

    assert (first.line, first.problem) == (4, "not a JSON object: the line was edited or damaged")


def test_a_line_of_another_run_inside_a_run_is_named(recorded: Recorded, tmp_path: Path) -> None:
    """Even with the chain rewritten, a line whose run_id is not its run's is named."""
    lines = _lines(recorded.clean)
    k = _middle_outcome(lines)
    record = orjson.loads(lines[k])
    record["run_id"] = "20260101T000000Z-feedbeef"
    lines[k] = orjson.dumps(record)

    first = _first(verify([_tampered(tmp_path, _rechain(lines))]))

    assert first.line == k + 1
    assert first.problem.startswith("a line of run 20260101T000000Z-feedbeef inside run ")


# --- runs and their run_finished lines --------------------------------------------------------


def test_run_finished_row_count_catches_a_rewritten_chain(
    recorded: Recorded, tmp_path: Path
) -> None:
    """A row line removed and the chain recomputed still fails: run_finished counts rows."""
    lines = _lines(recorded.clean)
    k = _middle_outcome(lines)
    finished = next(n for n in range(k, len(lines)) if b'"run_finished"' in lines[n])
    rows = orjson.loads(lines[finished])["rows"]

    v = verify([_tampered(tmp_path, _rechain([*lines[:k], *lines[k + 1 :]]))])

    assert _first(v) == Finding(
        str(tmp_path / "tampered.jsonl"),
        finished,  # one line earlier than it was, and 1-based
        f"run_finished says {rows} rows, the run has {rows - 1} outcome lines: "
        "a line was removed or added",
    )


def test_a_torn_last_line_is_a_note_not_a_failure(recorded: Recorded, tmp_path: Path) -> None:
    """A kill's unterminated last line passes with a note and is not counted."""
    lines = _lines(recorded.clean)
    torn = _tampered(tmp_path, [*lines, b'{"ts":"2026-11-28T10:0'])

    v = verify([torn], inputs=[recorded.source])

    assert (v.ok, v.lines) == (True, len(lines))
    assert f"{torn}:{len(lines) + 1} is cut short" in " ".join(v.notes)


# --- keyed chains -----------------------------------------------------------------------------


def test_keyed_chain_passes_with_its_key(recorded: Recorded) -> None:
    """An unkeyed run then a keyed resume: each line checked with its own run's algorithm."""
    v = verify([recorded.keyed], inputs=[recorded.source], key=KEY)

    assert (v.ok, v.runs, v.findings) == (True, 2, ())
    assert v.head == link(_lines(recorded.keyed)[-1].removesuffix(b"\n"), KEY)


def test_keyed_chain_fails_with_a_wrong_key(recorded: Recorded) -> None:
    """With another key the keyed run's first line already fails, and the key is suspected."""
    started = next(
        n + 1
        for n, line in enumerate(_lines(recorded.keyed))
        if b'"hmac-sha256"' in line and b'"run_started"' in line
    )

    first = _first(verify([recorded.keyed], key=b"not-the-key"))

    assert first.line == started
    assert first.problem.endswith("(or the audit key is not the one this run used)")


def test_keyed_chain_without_a_key_is_not_a_pass(recorded: Recorded) -> None:
    """A keyed run cannot be checked without its key: that is a finding, and no head."""
    v = verify([recorded.keyed])

    assert not v.ok
    assert len(v.findings) == 1
    assert v.findings[0].problem.endswith("chain is keyed: set BULKDELETE_AUDIT_KEY to verify it")
    assert v.head is None


FORGED_RUN = "20270101T000000Z-0ddba11"


def _append_unkeyed_run(lines: Lines) -> Lines:
    """Append a whole run declaring the unkeyed chain, linked as anyone without the key can."""
    started = next(orjson.loads(line) for line in reversed(lines) if b'"run_started"' in line)
    finished = next(orjson.loads(line) for line in reversed(lines) if b'"run_finished"' in line)
    unkeyed = {**started["settings"], "audit_chain": "sha256"}
    records = [
        {**started, "run_id": FORGED_RUN, "settings": unkeyed},
        {**finished, "run_id": FORGED_RUN, "status": "completed", "rows": 0, "totals": {}},
    ]
    out = list(lines)
    for record in records:
        body = orjson.dumps({**record, "prev": link(out[-1].removesuffix(b"\n"), None)})
        out.append(body + b"\n")
    return out


def test_an_unkeyed_run_after_a_keyed_one_fails_with_the_key(
    recorded: Recorded, tmp_path: Path
) -> None:
    """A run appended without the key after a keyed run is a downgrade, named at its first line."""
    lines = _lines(recorded.keyed)
    keyed_line, keyed_id = next(
        (n + 1, orjson.loads(line)["run_id"])
        for n, line in enumerate(lines)
        if b'"hmac-sha256"' in line and b'"run_started"' in line
    )
    forged = _tampered(tmp_path, _append_unkeyed_run(lines))

    v = verify([forged], key=KEY)

    assert v.findings == (
        Finding(
            str(forged),
            len(lines) + 1,
            f"run {FORGED_RUN}'s chain is unkeyed, but run {keyed_id} at line {keyed_line} "
            "before it was keyed: a run after a keyed run dropped the key, so anyone could "
            "have appended it",
        ),
    )


def test_an_unkeyed_run_after_unkeyed_runs_still_passes(recorded: Recorded, tmp_path: Path) -> None:
    """A never-keyed audit stays valid however it grows, even verified with a key at hand."""
    grown = _tampered(tmp_path, _append_unkeyed_run(_lines(recorded.clean)))

    v = verify([grown], key=KEY)

    assert (v.ok, v.runs, v.findings) == (True, 5, ())


def test_a_keyed_run_after_an_unkeyed_one_passes_and_stays_keyed(recorded: Recorded) -> None:
    """An upgrade is fine: the unkeyed run then the keyed resume pass, the head is keyed."""
    lines = _lines(recorded.keyed)
    chains = [
        orjson.loads(line)["settings"]["audit_chain"] for line in lines if b'"run_started"' in line
    ]

    v = verify([recorded.keyed], key=KEY)

    assert chains == ["sha256", "hmac-sha256"]
    assert (v.ok, v.findings) == (True, ())
    assert v.head == link(lines[-1].removesuffix(b"\n"), KEY)


def test_each_file_is_judged_on_its_own_keyed_runs(recorded: Recorded) -> None:
    """A keyed audit does not make the next file's unkeyed runs downgrades: chains are per file."""
    v = verify([recorded.keyed, recorded.clean], key=KEY)

    assert (v.ok, v.findings) == (True, ())


# --- inputs: manifests and one final outcome per row ------------------------------------------


def test_an_input_that_differs_from_the_manifest_fails(recorded: Recorded, tmp_path: Path) -> None:
    """One byte changed in the input: every run_started line names the mismatch."""
    changed = tmp_path / "users.csv"
    data = bytearray(recorded.source.read_bytes())
    data[20] ^= 0x01
    changed.write_bytes(bytes(data))

    v = verify([recorded.clean], inputs=[changed])

    first = _first(v)
    assert (first.path, first.line) == (str(recorded.clean), 1)
    assert first.problem.startswith(f"input {changed} (sha256 ")
    assert f"is not what this run read: {recorded.source} (sha256 " in first.problem
    assert len(v.findings) == v.runs == 4
    assert "rows were not checked: the inputs are not the files the runs read" in v.notes


def test_rows_without_a_final_outcome_fail(recorded: Recorded) -> None:
    """A killed run never resumed: the rows it did not reach are named in the input."""
    v = verify([recorded.killed_only], inputs=[recorded.source])

    first = _first(v)
    assert first.path == str(recorded.source)
    assert first.problem.endswith("has no final outcome in any run")


def test_failed_is_not_a_final_outcome(recorded: Recorded) -> None:
    """A UID whose only outcome is failed has no final outcome; the finding points at it."""
    failed = _lines(recorded.failing).index(
        next(line for line in _lines(recorded.failing) if b'"outcome":"failed"' in line)
    )

    first = _first(verify([recorded.failing], inputs=[recorded.source]))

    assert first == Finding(
        str(recorded.source),
        4,
        f"uid 'user-002' has no final outcome in any run; line {failed + 1} says failed",
    )


def test_two_final_outcomes_for_one_uid_fail(recorded: Recorded) -> None:
    """The same input deleted twice without --resume: each UID has two final outcomes."""
    v = verify([recorded.twice], inputs=[recorded.source])

    first = _first(v)
    assert (first.path, first.problem) == (
        str(recorded.twice),
        f"uid 'user-000' has 2 final outcomes: lines {_final_lines(recorded.twice, 'user-000')}",
    )


def test_a_restart_settles_rows_again_once_each(recorded: Recorded, tmp_path: Path) -> None:
    """Rows settled before a --restart and again by it (or its resume) pass, counted once; a
    line copied inside the restart's attempt still fails: the excuse is per attempt."""
    lines = _lines(recorded.restarted)
    last = max(n for n, line in enumerate(lines) if b'"outcome":"deleted"' in line)
    copied = _tampered(tmp_path, _rechain(duplicate_line(lines, last)))

    v = verify([recorded.restarted], inputs=[recorded.source])
    tampered = verify([copied], inputs=[recorded.source])

    assert v.ok, verification_text(v)
    assert (v.runs, v.rows_checked) == (3, len(UIDS) + 2)
    assert any("starts over (--restart)" in note for note in v.notes)
    assert _final_lines(recorded.restarted, "user-000").count(",") == 1  # settled twice
    uid = orjson.loads(lines[last])["normalised_uid"]
    problems = [f.problem for f in tampered.findings]
    assert any(p.startswith(f"uid {uid!r} has ") and "final outcomes" in p for p in problems)


# --- several files ----------------------------------------------------------------------------


def test_each_file_has_its_own_chain_and_head(recorded: Recorded) -> None:
    """Two audits verify together, each chain on its own; each file gets its head."""
    v = verify([recorded.clean, recorded.keyed], key=KEY)

    assert (v.ok, v.runs) == (True, 6)
    assert [head.path for head in v.heads] == [str(recorded.clean), str(recorded.keyed)]
    assert v.head == v.heads[1].hash
    assert "head of " in verification_text(v)


def test_the_same_audit_given_twice_fails(recorded: Recorded) -> None:
    """A run that appears twice is named, and so are the doubled final outcomes."""
    v = verify([recorded.clean, recorded.clean], inputs=[recorded.source])

    first = _first(v)
    assert (first.path, first.line) == (str(recorded.clean), 1)
    assert "already started at" in first.problem


@pytest.mark.parametrize("content", [None, b""])
def test_a_missing_or_empty_audit_is_a_finding(tmp_path: Path, content: bytes | None) -> None:
    """Nothing to verify is never a pass."""
    path = tmp_path / "audit.jsonl"
    if content is not None:
        path.write_bytes(content)

    first = _first(verify([path]))

    assert (first.path, first.line) == (str(path), None)
