"""Bulk calls: a million soft deletes in batches, and a server whose largest batch is 25.

Two scenarios, each against its own ``bulkdelete fake-server`` on 127.0.0.1 with CometChat's
documented 10,000 requests a minute (``--limit 10000 --window 60``):

million  1,000,000 UIDs that all exist, ``bulkdelete delete`` with its defaults (batches of
         100): the calls the server saw (target <= 10,100), the run's wall time (<= 120 s),
         the client's peak RSS (<= 100 MB), then ``verify --input`` (must pass).
max25    ``--max-batch 25``; 40,000 UIDs: 32,000 active, 4,000 deactivated before the run,
         4,000 absent. Every row's outcome must be what the server holds (deleted,
         already_deactivated, not_found), and at most 2 % of the calls refused.

The physics: 1,000,000 UIDs at 100 a call are 10,000 calls, and at 10,000 calls a minute
(98 % of it, the run's default share) that is 61 s at the very least. A table of scenario |
check | measured | target | result is printed; the exit status is 1 when a check fails.

Run from the repository root (about 4 minutes on 2 cores, standard library only):

    .venv/bin/python bench/bulk.py [--only million|max25] [--users N] [--keep-dir]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nothing_lost import Bench as LostBench  # bench/ is on the path of a script run from it
from nothing_lost import print_table

from bulkdelete.fake import fetch_stats

CLI = (sys.executable, "-m", "bulkdelete")
LIMIT = ("--limit", "10000", "--window", "60")
# Runs the command in argv[2:] and writes its peak RSS (KiB) to argv[1].
_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL)
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(done.returncode)
"""


@dataclass
class Bench(LostBench):
    """nothing_lost's bench (checks, environment, processes), and the commands as printed."""

    shown: list[str] = field(default_factory=list)

    def fake(self, *options: str) -> str:
        """Start a fake server; return its base URL."""
        args = [*CLI, "fake-server", "--port", "0", *options]
        self.shown.append(shlex.join(["bulkdelete", *args[3:]]))
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env()
        )
        self.processes.append(process)
        assert process.stdout is not None  # noqa: S101 - stdout=PIPE above
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            sys.exit(f"the fake server did not start: {url!r}")
        threading.Thread(target=process.stdout.read, daemon=True).start()
        return url

    def cli(self, *args: str, measure: Path | None = None) -> tuple[int, float]:
        """Run ``bulkdelete ARGS``; return its exit code and wall seconds."""
        self.shown.append(shlex.join(["bulkdelete", *args]))
        command = [*CLI, *args]
        if measure is not None:
            command = [sys.executable, "-c", _MEASURE, str(measure), *command]
        started = time.monotonic()
        done = subprocess.run(
            command, stdout=subprocess.DEVNULL, env=self.env(), timeout=900, check=False
        )
        return done.returncode, time.monotonic() - started


def _write(path: Path, uids: list[str]) -> Path:
    path.write_text("\n".join(uids) + "\n", encoding="utf-8")
    return path


def _rows(audit: Path) -> list[dict[str, Any]]:
    with audit.open("rb") as lines:
        return [json.loads(line) for line in lines if b'"outcome"' in line]


def million(bench: Bench, users: int) -> None:
    name = "million"
    uids = [f"user-{n:07d}" for n in range(users)]
    source = _write(bench.tmp / "million.txt", uids)
    url = bench.fake("--all-exist", *LIMIT)
    audit, summary, peak = (bench.tmp / f"million{ext}" for ext in (".jsonl", ".json", ".rss"))
    code, wall = bench.cli(
        "delete", str(source), "--base-url", url, "--audit", str(audit), "--no-progress",
        "--log-level", "warning", "--summary-json", str(summary), measure=peak,
    )  # fmt: skip
    stats = fetch_stats(url)
    facts = json.loads(summary.read_text(encoding="utf-8"))
    calls = stats["requests"]
    rss_mb = int(peak.read_text()) / 1024
    most_calls = users // 100 + 100
    bench.check(name, "exit code", code, "0", code == 0)
    bench.check(name, "UIDs deleted", facts["outcomes"]["deleted"], f"{users:,}",
                facts["outcomes"]["deleted"] == users)  # fmt: skip
    bench.check(
        name, "calls the server saw", f"{calls:,}", f"<= {most_calls:,}", calls <= most_calls
    )
    bench.check(name, "wall time of the run (s)", f"{wall:.1f}", "<= 120", wall <= 120)
    bench.check(name, "client peak RSS (MB)", f"{rss_mb:.1f}", "<= 100", rss_mb <= 100)
    bench.check(name, "UIDs per call", f"{users / max(calls - 1, 1):.1f}", "info", None)
    bench.check(name, "rows per second", f"{users / wall:,.0f}", "info", None)
    code, took = bench.cli("verify", str(audit), "--input", str(source))
    bench.check(name, "verify --input exit code", code, "0", code == 0)
    bench.check(name, "verify --input (s)", f"{took:.1f}", "info", None)


def max25(bench: Bench, users: int) -> None:
    name = "max25"
    uids = [f"member-{n:06d}" for n in range(users)]
    active, deactivated = uids[: users * 8 // 10], uids[users * 8 // 10 : users * 9 // 10]
    expected = dict.fromkeys(uids, "not_found")
    expected.update(dict.fromkeys(active, "deleted"))
    expected.update(dict.fromkeys(deactivated, "already_deactivated"))
    url = bench.fake(
        "--max-batch", "25", "--users-file", str(_write(bench.tmp / "active.txt", active)),
        "--deactivated-file", str(_write(bench.tmp / "deactivated.txt", deactivated)), *LIMIT,
    )  # fmt: skip
    source, audit = _write(bench.tmp / "max25.txt", uids), bench.tmp / "max25.jsonl"
    code, wall = bench.cli(
        "delete", str(source), "--base-url", url, "--audit", str(audit), "--no-progress",
        "--log-level", "warning",
    )  # fmt: skip
    stats = fetch_stats(url)
    got = {row["uid"]: row["outcome"] for row in _rows(audit)}
    wrong = sum(got.get(uid) != outcome for uid, outcome in expected.items())
    refused, calls = stats["bulk_refused"], stats["bulk_calls"]
    bench.check(name, "exit code", code, "0", code == 0)
    bench.check(name, "rows with a wrong or no outcome", wrong, "0", wrong == 0)
    bench.check(name, "outcomes", dict(Counter(got.values())), "info", None)
    bench.check(name, "bulk calls refused", f"{refused} of {calls} ({refused / calls:.2%})",
                "<= 2 %", refused <= 0.02 * calls)  # fmt: skip
    bench.check(name, "wall time of the run (s)", f"{wall:.1f}", "info", None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("million", "max25"))
    parser.add_argument("--users", type=int, help="UIDs of the million scenario")
    parser.add_argument("--keep-dir", action="store_true")
    options = parser.parse_args()
    bench = Bench(Path(tempfile.mkdtemp(prefix="bulkdelete-bulk-")))
    try:
        if options.only in (None, "million"):
            million(bench, options.users or 1_000_000)
        if options.only in (None, "max25"):
            max25(bench, 40_000)
    finally:
        bench.stop_all()
        if options.keep_dir:
            print(f"kept: {bench.tmp}")
        else:
            shutil.rmtree(bench.tmp, ignore_errors=True)
    print("commands:")
    for command in bench.shown:
        print(f"  {command}")
    print_table(bench.checks)
    return 1 if any(c.ok is False for c in bench.checks) else 0


if __name__ == "__main__":
    sys.exit(main())
