"""The exporter with parts of its per-export work switched off, to price each part.

Runs ``batch-export`` exactly as ``python -m batch_export`` would, after
replacing, in this process only, what the ``--without`` options name:

- ``journal``: journal lines are built but never written (no flusher, no
  fsync, no wait);
- ``files``: a small export is hashed but not written (no temporary, no
  fsync, no rename);
- ``check``: a small export's JSON is not parsed to check it.

Used by ``benchmarks/run.py`` (scenario ``overhead``): the CPU a run saves
without a part is what that part costs. Such a run keeps no usable output —
without the journal its manifest shows every target pending, without files
it lists as done files that were never written — so only its CPU and the
simulator's request counts mean anything. Not part of the product.

    python benchmarks/ablation.py --without journal --without files -- \
        run ids.csv --out DIR --api-url URL --no-progress
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from batch_export import cli
from batch_export.evidence.journal import Journal, _encode_line
from batch_export.input.ids import Target
from batch_export.storage import local as store
from batch_export.storage import validate
from batch_export.storage.local import LocalSink, SavedExport

PARTS = ("journal", "files", "check")


def _note_nowhere(self: Journal, event: str, target_id: str, **fields: Any) -> None:
    _encode_line(self._change(event, target_id, fields))  # the line is built, never written


async def _record_nowhere(self: Journal, event: str, target_id: str, **fields: Any) -> None:
    _note_nowhere(self, event, target_id, **fields)


async def _record_run_nowhere(self: Journal, **fields: Any) -> None:
    return None


async def _save_nowhere(
    self: LocalSink, target: Target, head: bytes, rest: AsyncIterator[bytes]
) -> SavedExport:
    body = head + b"".join([chunk async for chunk in rest])
    _check(target.kind.value, target.id, body)
    return SavedExport(
        file=self.locate(target),
        bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        gzip=False,
    )


def _no_check(kind: str, target_id: str, body: bytes) -> None:
    return None


#: the JSON check as the store calls it (replaced with ``--without check``)
_check = validate.check_whole


def switch_off(parts: list[str]) -> None:
    """Replace the named parts of the exporter for the rest of this process."""
    if "journal" in parts:
        Journal.record = _record_nowhere  # type: ignore[method-assign]
        Journal.note = _note_nowhere  # type: ignore[method-assign]
        Journal.record_run = _record_run_nowhere  # type: ignore[method-assign]
    if "files" in parts:
        LocalSink.save = _save_nowhere  # type: ignore[method-assign]
    if "check" in parts:
        global _check
        _check = _no_check
        vars(store)["check_whole"] = _no_check  # the name store.py looks up per export


def main() -> int:
    """Switch off the named parts, then run the exporter's own command line."""
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--without", action="append", choices=PARTS, default=[])
    args = parser.parse_args(argv[:split])
    switch_off(args.without)
    sys.argv = ["batch-export", *argv[split + 1 :]]
    cli.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
