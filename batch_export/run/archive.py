"""What a run says and leaves about the archive as a whole, beyond its own targets.

At the start, one line when the archive holds exports this input leaves out
(they stay: the manifest describes the archive). At the end, the run's seal
(``evidence/seal.py``), signed with ``--sign-key``, and the journal line that
names it; a warning when the earlier seals were signed and this one is not.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..evidence.journal import Journal
from ..evidence.manifest import iso_time
from ..evidence.seal import SealFile, write_seal
from ..input.reader import InputRecord

if TYPE_CHECKING:  # cryptography is imported only by a run that signs (run_export)
    from ..evidence.signing import Signer

__all__ = ["latest_is_signed", "say_what_stays", "seal_run"]

log = logging.getLogger(__name__)


def say_what_stays(journal: Journal) -> None:
    """One line when the archive holds exports this input does not name: they are kept."""
    outside = journal.states.done_outside_input()
    if outside:
        log.warning(
            "%d exported target%s not in this input; %s stay%s in the archive",
            outside,
            "s are" if outside != 1 else " is",
            "they" if outside != 1 else "it",
            "" if outside != 1 else "s",
        )


def seal_run(
    out_dir: Path,
    journal: Journal,
    summary: dict[str, Any],
    *,
    read: InputRecord,
    signer: Signer | None,
    signed_before: bool,
) -> str:
    """Write this run's seal and name it in the journal; the seal's name."""
    if signed_before and signer is None:
        log.warning(
            "the earlier seals of %s are signed but this run's is not: pass --sign-key, "
            "or verify --key will report this seal as unsigned",
            out_dir,
        )
    number, name, sha256 = write_seal(
        out_dir,
        {
            "kind": journal.kind,
            "run": journal.run_number or None,
            "tool_version": __version__,
            "started_at": summary["started_at"],
            "finished_at": summary["finished_at"],
            "sealed_at": iso_time(time.time()),
            "input": read.to_json(),
            "exit_code": summary["exit_code"],
        },
        journal_lines=journal.lines,
        journal_head=journal.head,
        signer=signer,
    )
    journal.append_seal_line(number, sha256)
    return name


def latest_is_signed(seals: list[SealFile]) -> bool:
    """Whether the latest of ``seals`` carries a signature."""
    if not seals:
        return False
    try:
        return "signature" in json.loads(seals[-1].read())
    except (OSError, ValueError):
        return False
