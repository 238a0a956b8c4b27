"""A permanent run's not-found UIDs: absent or deactivated, and with ``erase_deactivated``, erased.

A permanent DELETE that answers ``ERR_UID_NOT_FOUND`` cannot say whether the user is absent or
deactivated (and so, on a server that does not erase deactivated users, not erased). The bulk
deactivation tells them apart without changing either: it lists an absent UID in ``notFound``
and a deactivated one in ``alreadyDeactivatedUids`` (an active one, created since, it
deactivates: that counts as deactivated too). So ``Erasure`` holds each such row back, probes
the held UIDs in batches (``batch.Batcher``: one pacer turn per call, an intent line, retries,
splits), and only then writes the row's one line:

- absent: ``not_found``, as the DELETE answered, with the probe's note;
- deactivated: ``failed`` with ``DEACTIVATED_NOT_ERASED`` (the run exits 1), unless
  ``erase_deactivated``: then the run reactivates them (``PUT /users``, ``uidsToActivate``, its
  ``batch_sending`` line written through first: the intent) and sends each a permanent DELETE,
  and the row is ``deleted`` (or ``failed`` with why);
- a probe that failed: ``failed`` with its code: nothing told absent from deactivated.

Before those row lines, a ``probed`` line records what the probe found (``records.Probed``):
``report`` reads confirmed absence from it. A row is written once, after the probe: "one row line
per input row" holds, and ``verify``'s ledger reads the row line as ever.

A kill (or a stop) between the steps leaves the UID with an intent and no row line: in flight,
and ``--resume`` sends it again from its first step, its permanent DELETE. That erases a user the
run had reactivated already, and finds a still-deactivated one not found again, which the probe
and the reactivation then finish: both steps are idempotent, and no user stays active. A run
that stops after a reactivation and before its DELETE leaves the row unanswered (and says so in
the log) for the same reason. Against a server that erases deactivated users itself (CometChat's
own tests suggest so; the fake's default), a permanent DELETE never answers not found for them,
and the probe only confirms absence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import structlog

from bulkdelete.api import BULK_FRAME, MAX_BULK_BODY, bulk_cost
from bulkdelete.batch import Batcher, BatchSize, Fate, Member
from bulkdelete.outcome import (
    Answer,
    Call,
    Listed,
    Outcome,
    Probe,
    Result,
    probed,
)
from bulkdelete.records import Location, Probed
from bulkdelete.rows import Row
from bulkdelete.send import Sender

log = structlog.get_logger("bulkdelete")

PROBE_BATCH: Final = 100  # UIDs per probe at most: about what a 10 KB body holds of the longest
# Seconds a held row may wait for its probe while the run goes on, so that the audit (and a
# report read mid-run, or after a stop) soon says what happened to it. At most one probe call per
# this many seconds beyond the full batches: a small share even of the free plan's 500 a minute.
HOLD_SECONDS: Final = 2.0
_ERASED = "it was deactivated: reactivated and erased (--erase-deactivated)"


@dataclass(frozen=True, slots=True)
class _Held:
    """A row whose permanent DELETE answered not found, held for the probe."""

    row: Row
    result: Result
    where: Location

    @property
    def member(self) -> Member:
        assert self.row.uid is not None  # noqa: S101  (only sent rows are held)
        return Member(self.row.uid, self.where)


@dataclass(slots=True)
class Erasure:
    """Settles a run's rows: a permanent run's not-found ones after the probe (module docstring).

    ``settle`` audits a row at once, or holds it; a full batch of held rows is probed by the
    worker that filled it. ``finish`` probes the rest once every worker is done. ``abort`` is
    told a fatal answer, which stops the run.
    """

    sender: Sender
    abort: Callable[[Answer], None]
    erase: bool = False
    clock: Callable[[], float] = time.monotonic
    # Both bulk calls learn one largest size: the same body limit bounds them.
    size: BatchSize = field(default_factory=lambda: BatchSize(PROBE_BATCH))
    held: list[_Held] = field(default_factory=list)
    _bytes: int = BULK_FRAME  # the body the held UIDs would make
    _held_since: float = 0.0  # when the oldest held row was held

    async def settle(self, row: Row, result: Result, where: Location) -> None:
        """Audit a row's result; a permanent run's not-found row waits for the probe.

        Held rows are probed once they fill a batch, or once the oldest has waited
        ``HOLD_SECONDS`` by the time another row is settled (a silent stdin holds them until its
        next row or its end).
        """
        if not (self.sender.permanent and result.outcome is Outcome.NOT_FOUND):
            self.sender.record(row, result, where)
            if self.held and self.clock() - self._held_since >= HOLD_SECONDS:
                await self._probe(self._take())
            return
        assert row.uid is not None  # noqa: S101  (only sent rows have a result to settle)
        cost = bulk_cost(row.uid)
        if self._bytes + cost > MAX_BULK_BODY:
            await self._probe(self._take())
        if not self.held:
            self._held_since = self.clock()
        self.held.append(_Held(row, result, where))
        self._bytes += cost
        self.sender.tally.unanswered += 1  # sent, its row line not yet written
        if len(self.held) >= self.size.ceiling or self.clock() - self._held_since >= HOLD_SECONDS:
            await self._probe(self._take())

    async def finish(self) -> None:
        """Probe the rows still held (the run's end); a halted run leaves them unanswered."""
        if self.held and not self.sender.pacer.halted:
            await self._probe(self._take())

    def _take(self) -> list[_Held]:
        batch, self.held, self._bytes = self.held, [], BULK_FRAME
        return batch

    def _record(self, held: _Held, result: Result) -> None:
        tally = self.sender.tally
        tally.unanswered -= 1
        tally.absent += result.probe is Probe.ABSENT
        self.sender.record(held.row, result, held.where)

    async def _probe(self, batch: list[_Held]) -> None:
        probe = Batcher(self.sender, self.sender.api, self.size, Call.BULK_DEACTIVATE)
        sent = await probe.send([held.member for held in batch])
        if sent.fatal is not None:
            self.abort(sent.fatal)
        verdicts: list[tuple[_Held, Result]] = []
        for held, fate in zip(batch, sent.fates, strict=True):
            if fate is not None:  # None: the run halted first; the row stays unanswered
                verdicts.append((held, _verdict(held.result, fate)))
        named = self.sender.pseudonyms.of
        self.sender.audit.write(
            Probed(
                run_id=self.sender.run_id,
                absent=tuple(named(h.member.uid) for h, r in verdicts if r.probe is Probe.ABSENT),
                deactivated=tuple(
                    named(h.member.uid) for h, r in verdicts if r.probe is Probe.DEACTIVATED
                ),
            )
        )
        deactivated = [(h, r) for h, r in verdicts if r.probe is Probe.DEACTIVATED]
        for held, result in verdicts:
            if not (self.erase and result.probe is Probe.DEACTIVATED):
                self._record(held, result)
        if self.erase and deactivated:
            await self._erase(deactivated)

    async def _erase(self, deactivated: list[tuple[_Held, Result]]) -> None:
        """Reactivate deactivated users, then send each a permanent DELETE."""
        reactivation = Batcher(self.sender, self.sender.api, self.size, Call.BULK_REACTIVATE)
        sent = await reactivation.send([held.member for held, _ in deactivated])
        if sent.fatal is not None:
            self.abort(sent.fatal)
        erasing = []
        for (held, result), fate in zip(deactivated, sent.fates, strict=True):
            if fate is None:  # never sent (the run halted): still deactivated
                note = "the run stopped before reactivating it to erase it"
                self._record(held, dataclasses.replace(result, note=note))
            elif fate.failure is None and fate.listed is Listed.ABSENT:
                note = "the reactivation lists it in notFound: erased since the probe"
                self._record(held, dataclasses.replace(held.result, note=note))
            else:  # reactivated, active already, or perhaps reactivated: erase it now
                erasing.append(self._delete(held, result, fate))
        await asyncio.gather(*erasing)

    async def _delete(self, held: _Held, probed_result: Result, fate: Fate) -> None:
        member = held.member
        sent = await self.sender.delete(member.uid, held.where, ref=self.sender.named_ref(held.row))
        if sent is None:
            # Reactivated (or perhaps), and the run halted before the DELETE: the row stays
            # unanswered, and a resumed run's DELETE erases the user.
            log.warning("erasure_unfinished", uid=self.sender.pseudonyms.of(member.uid))
            return
        if sent.fatal is not None:
            self.abort(sent.fatal)
        self._record(held, _erased(sent.result, probed_result, fate))


def _verdict(not_found: Result, fate: Fate) -> Result:
    """Return a held row's result once the probe placed (or failed to place) its UID."""
    failure = fate.failure
    if failure is None:  # then the probe's answer placed it in one of its lists
        told = probed(not_found, fate.listed)
        assert told is not None  # noqa: S101  (a bulk deactivation's lists all tell)
        return told
    return dataclasses.replace(
        not_found,
        outcome=Outcome.FAILED,
        http_status=failure.http_status,
        error_code=failure.error_code,
        message=failure.message,
        note="the permanent DELETE answered not found, and the bulk probe that tells absent "
        "from deactivated failed: neither is known",
    )


def _erased(deleted: Result, probed_result: Result, fate: Fate) -> Result:
    """Return the row's result once the permanent DELETE after a reactivation answered."""
    if deleted.outcome is Outcome.DELETED:
        return dataclasses.replace(deleted, note=_ERASED, probe=Probe.DEACTIVATED)
    if deleted.outcome is Outcome.NOT_FOUND:
        # Still hidden by its deactivation: the reactivation did not take.
        why = fate.failure.error_code if fate.failure else fate.listed.value
        note = f"the reactivation to erase it did not take ({why}): still deactivated"
        return dataclasses.replace(probed_result, note=note)
    note = "reactivated to be erased, and its DELETE failed: a resumed run erases it"
    return dataclasses.replace(deleted, note=note, probe=Probe.DEACTIVATED)
