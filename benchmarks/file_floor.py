"""The filesystem floor: what storing N small exports durably costs, and nothing else.

Writes ``--count`` files of ``--size`` bytes the way the exporter stores a
small export — an owner-only temporary created with O_EXCL in ``.partial/``,
written, fsync'd, closed and renamed into one of 4096 bucket directories —
plus one directory fsync per bucket at the end, all in one thread with no
network, no JSON, no journal. Used by ``benchmarks/run.py`` (scenario
``overhead``) to show how much of the exporter's CPU per export is the
kernel's price for durable files, which the reference client never pays.

    python benchmarks/file_floor.py --dir DIR --count 20000 --size 5000

Prints one JSON line: {"files": n, "bytes": n}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys


def main() -> int:
    """Write the files, print the JSON counters."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--size", type=int, default=5000)
    args = parser.parse_args()
    root = args.dir
    partial = os.path.join(root, ".partial")
    os.makedirs(partial, mode=0o700)
    made: set[str] = set()
    body = b"x" * args.size
    for n in range(args.count):
        bucket = hashlib.sha256(f"profile:{n}".encode()).hexdigest()[:3]
        directory = os.path.join(root, "exports", "profile", bucket)
        if directory not in made:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            made.add(directory)
        temporary = os.path.join(partial, f"{n}.json")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, os.path.join(directory, f"{n}.json"))
    for directory in sorted(made):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    print(json.dumps({"files": args.count, "bytes": args.count * args.size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
