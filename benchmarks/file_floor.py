"""The filesystem floor: what storing N small exports durably costs, and nothing else.

Writes ``--count`` files of ``--size`` bytes the way the exporter stores a
small export — an owner-only temporary created with O_EXCL in ``.partial/``,
written, closed and renamed into one of 4096 bucket directories — all in one
thread with no network, no JSON, no journal. Made durable one of two ways:

- ``--mode fsync``: an fsync per file before its rename, and one directory
  fsync per bucket at the end (the store where ``syncfs`` is missing);
- ``--mode syncfs``: ``--batch`` files at a time, one ``syncfs`` before their
  renames and one after (the store's group commit, ``group_commit.py``).

Used by ``benchmarks/run.py`` (scenario ``overhead``) to show how much of the
exporter's CPU per export is the kernel's price for durable files, which the
reference client never pays.

    python benchmarks/file_floor.py --dir DIR --count 20000 --size 5000 [--mode syncfs]

Prints one JSON line: {"files": n, "bytes": n}.
"""

from __future__ import annotations

import argparse
import ctypes
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
    parser.add_argument("--mode", choices=("fsync", "syncfs"), default="fsync")
    parser.add_argument("--batch", type=int, default=16, help="files per syncfs (--mode syncfs)")
    args = parser.parse_args()
    root = args.dir
    partial = os.path.join(root, ".partial")
    os.makedirs(partial, mode=0o700)
    made: set[str] = set()
    body = b"x" * args.size
    syncfs = ctypes.CDLL(None, use_errno=True).syncfs if args.mode == "syncfs" else None
    anchor = os.open(partial, os.O_RDONLY)
    renames: list[tuple[str, str]] = []
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
            if syncfs is None:
                os.fsync(fd)
        finally:
            os.close(fd)
        renames.append((temporary, os.path.join(directory, f"{n}.json")))
        if syncfs is None or len(renames) >= args.batch or n == args.count - 1:
            if syncfs is not None and syncfs(anchor) != 0:
                raise OSError(ctypes.get_errno(), "syncfs failed")
            for old, new in renames:
                os.replace(old, new)
            renames = []
            if syncfs is not None and syncfs(anchor) != 0:
                raise OSError(ctypes.get_errno(), "syncfs failed")
    os.close(anchor)
    for directory in sorted(made) if syncfs is None else ():
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    print(json.dumps({"files": args.count, "bytes": args.count * args.size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
