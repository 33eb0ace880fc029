"""Why targets failed, grouped: one *cause* per kind of failure, with a count and a few IDs.

A failure message names its target and carries numbers that differ from one
target to the next (request IDs, attempt counts, line numbers), so a
thousand profiles deleted from the account would be a thousand different
messages. ``failure_cause`` takes those out and keeps what says why: the
wording, the HTTP status and the endpoint, e.g.::

    HTTP 404 from POST datarequest: Profile 5 does not exist
    -> HTTP 404 from POST datarequest: Profile <id> does not exist

``FailureGroups`` counts failures by cause in bounded memory (a capped
number of causes, a capped number of example IDs each), so the report and
``batch-export status`` can group a million-line manifest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "MAX_CAUSE_LENGTH",
    "OTHER_CAUSES",
    "CauseGroup",
    "FailureGroups",
    "failure_cause",
]

#: a cause longer than this is cut (a platform may answer with a page of text)
MAX_CAUSE_LENGTH = 200
#: the cause that collects every failure once ``FailureGroups`` holds its maximum
OTHER_CAUSES = "(other causes)"

# The status of "HTTP 404" stays: it is part of the cause, not an ID.
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# A token of 8 or more letters/digits/_ with a digit in it is an identifier
# (an opaque request ID "dr_…", a hash, a UUID part), never wording.
_LONG_ID = re.compile(r"\b(?=[\w-]*\d)[\w-]{8,}\b")
# A number on its own or before a unit ("3600s"); "v2" in a path is wording.
_NUMBER = re.compile(r"(?<!\w)\d+(?:\.\d+)*")
_SPACES = re.compile(r"\s+")


def failure_cause(message: str | None, target_id: str) -> str:
    """``message`` without the target's ID, other IDs and numbers; its HTTP status stays."""
    if not message:
        return "unknown (no error recorded)"
    text = _SPACES.sub(" ", message).strip()
    if target_id:
        # Whole words only ("12" is not in "123"), and case-insensitively: an
        # email address may come back lowercased.
        own = re.compile(rf"(?<!\w){re.escape(target_id)}(?!\w)", re.IGNORECASE)
        text = own.sub("<id>", text)
    text = _EMAIL.sub("<email>", text)
    statuses = [match.span(1) for match in _HTTP_STATUS.finditer(text)]
    text = _outside(statuses, text, lambda part: _NUMBER.sub("<n>", _LONG_ID.sub("<id>", part)))
    if len(text) > MAX_CAUSE_LENGTH:
        text = text[: MAX_CAUSE_LENGTH - 1].rstrip() + "…"
    return text


def _outside(spans: list[tuple[int, int]], text: str, change: Callable[[str], str]) -> str:
    """``text`` with ``change`` applied to every part outside ``spans`` (kept as they are)."""
    parts: list[str] = []
    start = 0
    for begin, end in spans:
        parts.extend((change(text[start:begin]), text[begin:end]))
        start = end
    parts.append(change(text[start:]))
    return "".join(parts)


@dataclass
class CauseGroup:
    """One cause: how many targets failed with it, and the first few of their IDs."""

    cause: str
    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class FailureGroups:
    """Failures counted by cause, in bounded memory.

    At most ``max_causes`` distinct causes are kept; failures with a cause
    not seen before then go to ``OTHER_CAUSES`` (``overflowed`` counts them).
    Each cause keeps the first ``max_examples`` IDs.
    """

    max_examples: int = 5
    max_causes: int = 1000
    total: int = 0
    overflowed: int = 0
    _groups: dict[str, CauseGroup] = field(default_factory=dict, repr=False)

    def add(self, message: str | None, target_id: str) -> str:
        """Count one failure of ``target_id``; returns the cause it was counted under."""
        cause = failure_cause(message, target_id)
        group = self._groups.get(cause)
        if group is None:
            if len(self._groups) >= self.max_causes:
                self.overflowed += 1
                cause = OTHER_CAUSES
                group = self._groups.get(cause)
            if group is None:
                group = self._groups[cause] = CauseGroup(cause)
        self.total += 1
        group.count += 1
        if len(group.examples) < self.max_examples:
            group.examples.append(target_id)
        return cause

    def groups(self) -> list[CauseGroup]:
        """Every cause, the most common first (ties in the order of the cause's text)."""
        return sorted(self._groups.values(), key=lambda group: (-group.count, group.cause))

    def __len__(self) -> int:
        return len(self._groups)
