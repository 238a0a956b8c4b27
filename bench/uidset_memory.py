"""UidSet against set[str]: memory and time for a million UIDs.

Each structure is measured in a fresh child process per UID shape, so one's high-water mark does
not hide the other's. Per child:

- peak RSS: the whole process's ``ru_maxrss`` after adding N UIDs made one at a time (so the set
  keeps its strings alive and UidSet lets them go, as in a streaming read); delta: minus the
  ``ru_maxrss`` before the first add (interpreter and imports).
- traced: ``tracemalloc`` peak while building the same structure in a second child (allocations
  only, transient table copies included), and held: the structure's own bytes afterwards
  (``UidSet.nbytes``; for the set, the set plus its strings).
- ns/op, the best of ``--repeat`` passes over a prebuilt list of N UIDs: ``add`` of new UIDs into
  an empty structure (growth included), ``add`` of the same UIDs again, ``in`` for members and for
  absent UIDs. For the set, ``add`` is the same check-then-add: ``if uid not in s: s.add(uid)``.

Run from the repository root (about 4 minutes on 2 cores; standard library only):

    .venv/bin/python bench/uidset_memory.py [--n 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from bulkdelete.uidset import UidSet

KINDS = ("UidSet", "set[str]")


def user_uids(n: int, batch: int) -> Iterator[str]:
    """Yield ``user-0000000``-style UIDs (12 characters); batches never overlap."""
    return (f"user-{i:07d}" for i in range(batch * n, (batch + 1) * n))


def uuid4_uids(n: int, batch: int) -> Iterator[str]:
    """Yield random-looking version-4 UUIDs (36 characters), the same ones for a batch."""
    rng = random.Random(batch)  # noqa: S311 -- reproducible test data, not secrets
    return (str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n))


SHAPES = {"user-%07d": user_uids, "uuid4": uuid4_uids}


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def held_bytes(structure: UidSet | set[str]) -> int:
    if isinstance(structure, UidSet):
        return structure.nbytes
    return sys.getsizeof(structure) + sum(map(sys.getsizeof, structure))


def fill(structure: UidSet | set[str], uids: Iterable[str]) -> None:
    """Check-then-add every UID, the way bulkdelete spots duplicates."""
    if isinstance(structure, UidSet):
        add = structure.add
        for uid in uids:
            add(uid)
    else:
        add_new = structure.add
        for uid in uids:
            if uid not in structure:
                add_new(uid)


def empty(kind: str) -> UidSet | set[str]:
    return UidSet() if kind == "UidSet" else set()


def ns_per_op(kind: str, uids: list[str], absent: list[str]) -> dict[str, float]:
    """Time one pass of each operation over the prebuilt lists."""
    structure = empty(kind)
    seconds: dict[str, float] = {}
    for label, probes in (("add new", uids), ("add dup", uids)):
        start = time.perf_counter()
        fill(structure, probes)
        seconds[label] = time.perf_counter() - start
    for label, probes in (("in hit", uids), ("in miss", absent)):
        start = time.perf_counter()
        for uid in probes:
            uid in structure  # noqa: B015 -- the lookup is what is timed
        seconds[label] = time.perf_counter() - start
    return {label: spent / len(uids) * 1e9 for label, spent in seconds.items()}


def child(kind: str, shape: str, n: int, repeat: int, *, traced: bool) -> dict[str, Any]:
    structure = empty(kind)
    if traced:
        tracemalloc.start()
        fill(structure, SHAPES[shape](n, 0))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"traced_mb": peak / 2**20, "held_mb": held_bytes(structure) / 2**20}
    before = max_rss_mb()
    fill(structure, SHAPES[shape](n, 0))
    result: dict[str, Any] = {"rss_mb": max_rss_mb(), "delta_mb": max_rss_mb() - before}
    del structure
    uids, absent = list(SHAPES[shape](n, 0)), list(SHAPES[shape](n, 1))
    passes = [ns_per_op(kind, uids, absent) for _ in range(repeat)]
    result["ns"] = {label: min(p[label] for p in passes) for label in passes[0]}
    return result


def run_child(kind: str, shape: str, n: int, repeat: int, *, traced: bool) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", kind, shape, f"--n={n}", f"--repeat={repeat}"]
    out = subprocess.run([*argv, *(["--traced"] * traced)], check=True, capture_output=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "SHAPE"), help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, shape = args.child
        print(json.dumps(child(kind, shape, args.n, args.repeat, traced=args.traced)))
        return

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"N = {args.n:,} UIDs, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {load}"
    )
    print(f"memory in MB; time in ns/op, best of {args.repeat}")
    header = ("shape", "structure", "peak RSS", "RSS delta", "traced", "held", "B/UID")
    print("{:<10} {:<9} {:>9} {:>9} {:>7} {:>6} {:>6}".format(*header), end="")
    print("".join(f"{label:>9}" for label in ("add new", "add dup", "in hit", "in miss")))
    for shape in SHAPES:
        for kind in KINDS:
            rss = run_child(kind, shape, args.n, args.repeat, traced=False)
            trace = run_child(kind, shape, args.n, args.repeat, traced=True)
            per_uid = trace["held_mb"] * 2**20 / args.n
            print(
                f"{shape:<10} {kind:<9} {rss['rss_mb']:9.1f} {rss['delta_mb']:9.1f}"
                f" {trace['traced_mb']:7.1f} {trace['held_mb']:6.1f} {per_uid:6.1f}",
                end="",
            )
            print("".join(f"{ns:9.0f}" for ns in rss["ns"].values()))
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
