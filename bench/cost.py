"""Client instructions per delete, counted by valgrind's callgrind: scenario 7 without the noise.

Scenario 7 of ``bench/pacing.py`` compares rates, which move by up to 25 % between rounds on a
shared machine. Instructions barely do: two runs of a contender agree within about 1 %.
Each Python contender of scenario 7 (the bare aiohttp loop, the evidence floor, bulkdelete with
scenario 7's flags) deletes SMALL and then LARGE fresh UIDs under callgrind, each run against its
own unlimited ``bulkdelete fake-server`` on 127.0.0.1 (not under valgrind). The cost of one delete
is (instructions at LARGE - instructions at SMALL) / (LARGE - SMALL): start-up, imports and
shut-down cancel out.

    .venv/bin/python bench/cost.py [--small 200] [--large 2200]   # ~4 minutes; needs valgrind

valgrind runs the CPU without its SHA extensions, so the audit's hashing weighs more here than on
the machine itself; the rates of ``bench/pacing.py`` remain the benchmark.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from pacing import (
    BENCH,
    CONCURRENCY_7,
    FULL,
    Bench,
    BenchError,
    Fake,
    fake_server,
    tool_args,
    write_uids,
)

_COLLECTED = re.compile(rb"== Collected : (\d+)")

Command = Callable[[Fake, Path, Path], list[str]]


def _loop(kind: str) -> Command:
    def command(fake: Fake, users: Path, audit: Path) -> list[str]:
        extra = [str(audit)] if kind == "floor" else []
        return [
            sys.executable, str(BENCH / "_loops.py"), kind, fake.base_url, str(users),
            str(CONCURRENCY_7), *extra,
        ]  # fmt: skip

    return command


def instructions(bench: Bench, name: str, command: Command, count: int) -> int:
    """Run one contender under callgrind on ``count`` fresh UIDs; return the instructions."""
    run = f"{name}-{count}"
    users = write_uids(bench.tmp / f"users-{run}.txt", count, run, header=False)
    log = bench.tmp / f"valgrind-{run}.log"
    with fake_server(bench, "cost", {"all_exist": True}) as fake:
        args = command(fake, users, bench.tmp / f"audit-{run}.jsonl")
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={bench.tmp}/cg-{run}"]
        code = bench.popen([*valgrind, *args], log).wait(timeout=1800)
        deleted = len(fake.stats()["applied"])
    found = _COLLECTED.search(log.read_bytes())
    if code != 0 or deleted != count or found is None:
        raise BenchError(f"{run}: exit {code}, {deleted} of {count} deleted; see {log}")
    return int(found.group(1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=200, help="UIDs in the first run")
    parser.add_argument("--large", type=int, default=2200, help="UIDs in the second run")
    options = parser.parse_args(argv)
    if not 0 < options.small < options.large:
        parser.error("--small must be above 0 and below --large")
    if shutil.which("valgrind") is None:
        print("bench/cost.py needs valgrind (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-cost-"))
    bench = Bench(FULL, tmp)

    def bulkdelete(fake: Fake, users: Path, _audit: Path) -> list[str]:
        return tool_args(bench, "7", fake.base_url, users)  # scenario 7's flags, its own audit

    contenders = (
        ("aiohttp loop", _loop("aiohttp")),
        ("evidence floor", _loop("floor")),
        ("bulkdelete", bulkdelete),
    )
    per_delete: dict[str, float] = {}
    try:
        for name, command in contenders:
            counts = [
                instructions(bench, name.split()[0], command, n)
                for n in (options.small, options.large)
            ]
            per_delete[name] = (counts[1] - counts[0]) / (options.large - options.small)
            bench.log(f"{name}: {per_delete[name]:,.0f} instructions per delete")
    except BenchError as failed:
        print(f"bench/cost.py: {failed} (logs kept in {tmp})", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    shutil.rmtree(tmp, ignore_errors=True)
    bare, floor = per_delete["aiohttp loop"], per_delete["evidence floor"]
    spread = f"{options.large} - {options.small} UIDs"
    print(f"\nclient instructions per delete under callgrind ({spread}):\n")
    print(f"{'contender':<16}{'per delete':>12}{'/ aiohttp loop':>16}{'/ evidence floor':>18}")
    for name, cost in per_delete.items():
        print(f"{name:<16}{cost:>12,.0f}{cost / bare:>16.2f}{cost / floor:>18.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
