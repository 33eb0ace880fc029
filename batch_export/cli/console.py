"""How the operator's messages reach stderr: plain lines, or JSON records for schedulers.

Each command builds one ``Console`` from its ``-v``/``-q``/``--log-format``
options; it also sets up the package's logging (scrubbed of secrets by the
run's ``Redactor``), so there is no module-level state to forget or leak
between commands run in one process (the tests run many). stdout is never
written here: it carries data only.

A record may carry structured fields (``extra={"fields": {...}}``: the run's
events and progress lines, ``run/events.py``); in JSON they become members of
the record's object beside ``time``, ``level``, ``logger`` and ``message``,
which stays a sentence, so nothing has to parse JSON out of a string.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import Any

import click

from ..redaction import RedactingFilter, Redactor
from ..run.events import EVENTS_LOGGER

__all__ = ["Console"]

#: the operator's own messages (e.g. the end-of-run record): shown unless -q
_OPERATOR = "batch_export.cli"
#: tracebacks of internal errors: shown with -v only
_TRACEBACK = "batch_export.traceback"


#: the members every JSON record has; a record's fields never replace them
_CORE = ("time", "level", "logger", "message")


class _JsonFormatter(logging.Formatter):
    """One JSON object per record: the core members, then the record's ``fields``, scrubbed."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            # The filter scrubbed the message only; an error text among the
            # fields may quote a JWT the platform echoed: scrub them too.
            scrubbed = self._scrub(fields)
            data.update((key, value) for key, value in scrubbed.items() if key not in _CORE)
        # Not ASCII-escaped: the message stays readable ("·"); stderr escapes what it cannot encode.
        return json.dumps(data, default=str, ensure_ascii=False)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, dict):
            return {str(key): self._scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(item) for item in value]
        return value


class Console:
    """One command's messages on stderr, in the chosen format and verbosity."""

    def __init__(self, *, as_json: bool = False, quiet: bool = False) -> None:
        self.as_json = as_json
        self.quiet = quiet
        self._log = logging.getLogger(_OPERATOR)

    @classmethod
    def setup(cls, verbose: int, quiet: bool, log_format: str, redactor: Redactor) -> Console:
        """Configure the package's logging for one command and return its console."""
        level = (
            logging.ERROR
            if quiet
            else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
        )
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(RedactingFilter(redactor))
        if log_format == "json":
            handler.setFormatter(_JsonFormatter(redactor))
        else:
            handler.setFormatter(logging.Formatter("batch-export: %(levelname)s: %(message)s"))
        root = logging.getLogger("batch_export")
        root.handlers[:] = [handler]
        root.setLevel(level)
        root.propagate = False
        # The operator's records and the run's events (start, end, --stats-interval
        # lines) are for a scheduler's log: shown at the default level, not -q.
        for name in (_OPERATOR, EVENTS_LOGGER):
            logging.getLogger(name).setLevel(logging.ERROR if quiet else min(level, logging.INFO))
        # aiohttp logs full URLs (with the token) at debug level: keep it out.
        logging.getLogger("aiohttp").setLevel(logging.WARNING)
        return cls(as_json=log_format == "json", quiet=quiet)

    def say(self, level: int, message: str) -> None:
        """A message for the operator on stderr, in the chosen --log-format."""
        if self.as_json:
            self._log.log(level, message)
        elif level >= logging.WARNING:
            click.echo(f"batch-export: {logging.getLevelName(level).lower()}: {message}", err=True)
        elif not self.quiet:
            click.echo(f"batch-export: {message}", err=True)

    @staticmethod
    def traceback(exc: BaseException, redactor: Redactor) -> None:
        """The traceback of an internal error, scrubbed, for ``-v`` only."""
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        logging.getLogger(_TRACEBACK).info("traceback:\n%s", redactor(trace))
