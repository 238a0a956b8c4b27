"""Permanent runs over active, deactivated and absent users (issue 15, Done-when 3 and 4).

Every server is a ``bulkdelete fake-server --deactivated-not-found`` (a permanent DELETE of a
deactivated user answers ERR_UID_NOT_FOUND, the mode CometChat's documents leave open) on
127.0.0.1, holding ``N`` active users (``--users-file``) and ``N`` deactivated ones
(``--deactivated-file``); the input names those and ``N`` absent UIDs, shuffled.

plain   a permanent run without ``--erase-deactivated``: exit 1; every deactivated user is
        ``failed DEACTIVATED_NOT_ERASED`` in the audit and the report, every absent UID
        ``not_found`` and confirmed absent by the probe, every active user erased, and nobody
        reactivated.
erase   the same with ``--erase-deactivated``: exit 0; every deactivated user ends erased (the
        server's state), verify --input passes.
kill9   the ``--erase-deactivated`` run (server ``--latency 0.02``) killed with SIGKILL at
        ``--kills`` random points (in turn: after a random share of the rows left, and 0-50 ms
        after a reactivation's intent line), each followed by ``--resume``, and a last
        ``--resume`` to the end: no UID without a final outcome, no user that was deactivated
        before left active (the server's state), verify --input passes. After each kill, the
        users then active that were deactivated before are counted (reactivated, not yet
        erased: what --resume must finish), and ``report`` must name each in unknown state.

Run from the repository root (about a minute; standard library only):

    .venv/bin/python bench/bulk_permanent.py [--users N] [--kills K] [--seed S] [--keep-dir]
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nothing_lost import (
    CLI,
    Bench,
    BenchError,
    Fake,
    bench_dir,
    count_outcomes,
    read_audit,
    rows,
    run_scenarios,
    wait_for_outcomes,
)

RATE = "400"
CONCURRENCY = "16"


class Population:
    """The UIDs of one bench: active, deactivated and absent, and the input naming them all."""

    def __init__(self, tmp: Path, count: int, seed: int) -> None:
        self.active = [f"act-{n:05d}" for n in range(count)]
        self.deactivated = [f"off-{n:05d}" for n in range(count)]
        self.absent = [f"gone-{n:05d}" for n in range(count)]
        everyone = [*self.active, *self.deactivated, *self.absent]
        random.Random(seed).shuffle(everyone)  # noqa: S311 - an input's order, no secret
        self.users_file, self.deactivated_file = tmp / "active.txt", tmp / "deactivated.txt"
        self.users_file.write_text("\n".join(self.active) + "\n", encoding="utf-8")
        self.deactivated_file.write_text("\n".join(self.deactivated) + "\n", encoding="utf-8")
        self.input = tmp / "users.csv"
        self.input.write_text("uid\n" + "\n".join(everyone) + "\n", encoding="utf-8")
        self.total = len(everyone)


def start_fake(bench: Bench, scenario: str, people: Population, *options: str) -> Fake:
    """Start a fake in its not-found mode with the bench's users; read its base URL."""
    args = [
        "fake-server", "--port", "0", "--users-file", str(people.users_file),
        "--deactivated-file", str(people.deactivated_file), "--deactivated-not-found", *options,
    ]  # fmt: skip
    bench.commands.append((scenario, args))
    with (bench.tmp / f"{scenario}-server.log").open("w", encoding="utf-8") as errors:
        process = subprocess.Popen(
            [*CLI, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
            text=True, env=bench.env(),
        )  # fmt: skip
    bench.processes.append(process)
    assert process.stdout is not None  # noqa: S101 - stdout=PIPE above
    line = process.stdout.readline().strip()
    if not line.startswith("http://127.0.0.1:"):
        raise BenchError(f"the fake server did not start: {line!r}")
    return Fake(process, line)


def erase_args(fake: Fake, people: Population, audit: Path, *extra: str) -> list[str]:
    return [
        "delete", str(people.input), "--permanent", "--yes", "--base-url", fake.base_url,
        "--audit", str(audit), "--rate", RATE, "--concurrency", CONCURRENCY, "--no-progress",
        *extra,
    ]  # fmt: skip


def wait_for_lines(audit: Path, marker: bytes, process: subprocess.Popen[str]) -> None:
    """Wait until the audit holds one more line with ``marker`` than now; fail if the run ends."""
    seen = audit.read_bytes().count(marker) if audit.exists() else 0
    while (audit.read_bytes().count(marker) if audit.exists() else 0) <= seen:
        if process.poll() is not None:
            raise BenchError(f"the run exited {process.returncode} before a new {marker!r} line")
        time.sleep(0.005)


def latest_rows(audit: Path) -> dict[str, dict[str, Any]]:
    """Return each UID's last row line."""
    records, _ = read_audit(audit)
    return {r["normalised_uid"]: r for r in rows(records) if r.get("normalised_uid")}


def reactivated(fake: Fake, people: Population) -> set[str]:
    """Return the users deactivated at the start that the server now holds active."""
    applied = fake.stats()["applied"]
    return {uid for uid in people.deactivated if applied.get(uid) == "reactivated"}


def verify(bench: Bench, audit: Path, people: Population) -> tuple[str, bool]:
    done = subprocess.run(
        [*CLI, "verify", str(audit), "--input", str(people.input)],
        capture_output=True, text=True, env=bench.env(), timeout=120, check=False,
    )  # fmt: skip
    first = done.stdout.splitlines()[0] if done.stdout else done.stderr.strip()
    return f"exit {done.returncode}: {first[:70]}", done.returncode == 0


def scenario_plain(bench: Bench, people: Population) -> None:
    fake = start_fake(bench, "plain", people)
    audit = bench.tmp / "plain.jsonl"
    code, seconds = bench.run(
        "plain", erase_args(fake, people, audit), bench.tmp / "plain.log", audit
    )
    states, report, stats = latest_rows(audit), bench.report(audit), fake.stats()
    n = len(people.deactivated)
    bench.check("plain", "exit code", code, "1", code == 1)
    not_erased = sum(
        1
        for uid in people.deactivated
        if (states[uid]["outcome"], states[uid]["error_code"])
        == ("failed", "DEACTIVATED_NOT_ERASED")
    )
    bench.check(
        "plain",
        "deactivated: failed DEACTIVATED_NOT_ERASED",
        f"{not_erased}/{n}",
        f"{n}",
        not_erased == n,
    )
    by_code = report["failures_by_code"].get("DEACTIVATED_NOT_ERASED", 0)
    bench.check("plain", "report: DEACTIVATED_NOT_ERASED", by_code, f"{n}", by_code == n)
    absent = sum(1 for uid in people.absent if states[uid]["outcome"] == "not_found")
    bench.check("plain", "absent: not_found", f"{absent}/{n}", f"{n}", absent == n)
    confirmed, unsure = report["absent_confirmed"], len(report["not_found_in_permanent"])
    bench.check(
        "plain",
        "report: confirmed absent / unproven",
        f"{confirmed} / {unsure}",
        f"{n} / 0",
        (confirmed, unsure) == (n, 0),
    )
    erased = sum(1 for uid in people.active if stats["applied"].get(uid) == "removed")
    bench.check("plain", "active: erased (server)", f"{erased}/{n}", f"{n}", erased == n)
    bench.check(
        "plain", "reactivated (server)", stats["reactivated"], "0", stats["reactivated"] == 0
    )
    requests = report["runs"][0]["requests"]
    bench.check(
        "plain",
        "requests / bulk calls / seconds",
        f"{requests} / {stats['bulk_calls']} / {seconds:.1f}",
        "info",
        None,
    )


def scenario_erase(bench: Bench, people: Population) -> None:
    fake = start_fake(bench, "erase", people)
    audit = bench.tmp / "erase.jsonl"
    args = erase_args(fake, people, audit, "--erase-deactivated")
    code, seconds = bench.run("erase", args, bench.tmp / "erase.log", audit)
    stats = fake.stats()
    n = len(people.deactivated)
    bench.check("erase", "exit code", code, "0", code == 0)
    erased = sum(1 for uid in people.deactivated if stats["applied"].get(uid) == "removed")
    bench.check("erase", "deactivated: erased (server)", f"{erased}/{n}", f"{n}", erased == n)
    states = latest_rows(audit)
    deleted = sum(1 for uid in people.deactivated if states[uid]["outcome"] == "deleted")
    bench.check("erase", "deactivated: deleted (audit)", f"{deleted}/{n}", f"{n}", deleted == n)
    measured, ok = verify(bench, audit, people)
    bench.check("erase", "verify --input", measured, "exit 0", ok)
    report = bench.report(audit)
    requests = report["runs"][0]["requests"]
    bench.check(
        "erase",
        "requests / bulk calls / reactivated / seconds",
        f"{requests} / {stats['bulk_calls']} / {stats['reactivated']} / {seconds:.1f}",
        "info",
        None,
    )


def scenario_kill9(bench: Bench, people: Population, kills: int, rng: random.Random) -> None:
    fake = start_fake(bench, "kill9", people, "--latency", "0.02")
    audit, log = bench.tmp / "kill9.jsonl", bench.tmp / "kill9.log"
    exposed, unnamed = [], 0
    for kill in range(kills):
        extra = ("--erase-deactivated", *(("--resume",) if kill else ()))
        process = bench.popen("kill9", erase_args(fake, people, audit, *extra), log)
        if kill % 2:  # just after a reactivation's intent: the window a kill must not widen
            wait_for_lines(audit, b'"bulk_reactivate"', process)
            time.sleep(rng.uniform(0.0, 0.05))
        else:  # after a random share of what is left
            done = count_outcomes(audit)
            wait_for_outcomes(audit, done + rng.randint(1, (people.total - done) // 2), process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        time.sleep(0.1)  # let requests in flight at the kill land
        active = reactivated(fake, people)
        exposed.append(len(active))
        unnamed += len(active - set(bench.report(audit)["unknown"]))
    bench.check(
        "kill9",
        "kills; active after each (deactivated before)",
        f"{kills}; {exposed}",
        "info",
        None,
    )
    bench.check("kill9", "active after a kill, not in report's unknown", unnamed, "0", unnamed == 0)
    final = erase_args(fake, people, audit, "--erase-deactivated", "--resume")
    code, seconds = bench.run("kill9", final, log, audit)
    bench.check("kill9", "last --resume exit code", code, "0", code == 0)
    states = latest_rows(audit)
    final_states = Counter(
        states.get(uid, {}).get("outcome")
        for uid in [*people.active, *people.deactivated, *people.absent]
    )
    without = people.total - final_states["deleted"] - final_states["not_found"]
    bench.check("kill9", "UIDs without a final outcome", without, "0", without == 0)
    unknown = len(bench.report(audit)["unknown"])
    bench.check("kill9", "report: unknown state", unknown, "0", unknown == 0)
    active = len(reactivated(fake, people))
    bench.check("kill9", "deactivated before, active now (server)", active, "0", active == 0)
    erased = sum(1 for uid in people.deactivated if fake.stats()["applied"].get(uid) == "removed")
    n = len(people.deactivated)
    bench.check("kill9", "deactivated: erased (server)", f"{erased}/{n}", f"{n}", erased == n)
    measured, ok = verify(bench, audit, people)
    bench.check("kill9", "verify --input", measured, "exit 0", ok)
    statuses = [run["status"] for run in bench.report(audit)["runs"]]
    bench.check(
        "kill9", "run statuses; last run seconds", f"{statuses}; {seconds:.1f}", "info", None
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="users of each kind")
    parser.add_argument("--kills", type=int, default=4, help="kill -9 of the erase run")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep-dir", action="store_true", help="keep audits and logs")
    options = parser.parse_args(argv)
    started = time.monotonic()
    rng = random.Random(options.seed)  # noqa: S311 - kill moments, no secret
    with bench_dir(keep=options.keep_dir) as bench:
        people = Population(bench.tmp, options.users, options.seed)
        scenarios = {
            "plain": lambda: scenario_plain(bench, people),
            "erase": lambda: scenario_erase(bench, people),
            "kill9": lambda: scenario_kill9(bench, people, options.kills, rng),
        }
        return run_scenarios(bench, scenarios, started)


if __name__ == "__main__":
    sys.exit(main())
