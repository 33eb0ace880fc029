"""One target's state as a plain object, for small journals replayed into a dict (``replay.py``)."""

from __future__ import annotations

from typing import Any

from .target_view import DONE, FAILED, NEW, SUBMITTED, SUBMITTING

__all__ = ["TargetState"]


class TargetState:
    """One target's state as a plain object: what ``TargetTable`` keeps in arrays.

    For callers that replay a small journal into a dict (tests, the report)
    and for an entry with no state (an invalid row). A run and ``status``
    use a ``TargetTable``; its ``TargetView`` has the same fields. A finished
    target keeps no request ID, hash or file name in memory, nor its size
    if it finished in this run: those stay in its ``done`` journal line, from
    which the manifest is written (``final_done_records``); ``done_records``
    counts those lines so the last one can be recognised. The rare file name
    that is not the default one is in ``RecordedFiles``.
    """

    __slots__ = (
        "ambiguous",
        "attempts",
        "bytes",
        "done_records",
        "error",
        "gzip",
        "in_input",
        "reissued",
        "request_id",
        "status",
        "submitted_at",
    )

    def __init__(self) -> None:
        self.status = NEW
        self.request_id: str | None = None
        self.attempts = 0  # POSTs sent for this target, over all runs
        self.ambiguous = 0  # POSTs that may have created a request we never learnt of
        self.reissued = 0  # requests that expired or vanished and were asked again
        self.bytes = 0  # size of a file saved by an earlier run, for the cheap resume check
        self.gzip = False
        self.error: str | None = None
        self.done_records = 0
        self.in_input = False  # named in this run's input
        #: when the open request was made (its ``submitted`` line), for the ``done`` line
        self.submitted_at: float | None = None

    def apply(self, record: dict[str, Any], *, live: bool = False) -> None:
        """Fold one journal record into this state (``live``: a change made by this run)."""
        event = record.get("ev")
        if event == "done":
            self.status = DONE
            self.request_id = None
            # Only a size replayed from an earlier run is ever read (the resume
            # check). One saved by this run stays in its journal line: a
            # million distinct int objects would be ~25 MB.
            self.bytes = 0 if live else int(record.get("bytes", 0))
            self.gzip = bool(record.get("gzip", False))
            self.error = None
            self.done_records += 1
            self.submitted_at = None
        elif event == "submitted" or event == "push-conflict":
            if event == "submitted":
                self.submitted_at = record.get("ts")
            # A push conflict (two different pushed exports) reopens the request:
            # the file is not trusted until the platform's own copy is fetched.
            self.status = SUBMITTED
            self.request_id = record.get("rid")
            self.error = None
        elif event == "submitting":
            self.status = SUBMITTING
            self.request_id = None
            self.attempts += 1
        elif event == "ambiguous":
            self.ambiguous += 1
        elif event == "expired":
            self.status = NEW
            self.request_id = None
            self.reissued += 1
        elif event == "failed":
            self.status = FAILED
            self.error = record.get("error")
        elif event == "stale":
            # a done target whose file went missing or bad: export it again
            self.status = NEW
            self.request_id = None
            self.error = record.get("error")
