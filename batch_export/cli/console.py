"""How the operator's messages reach stderr: plain lines, or JSON records for schedulers.

Each command builds one ``Console`` from its ``-v``/``-q``/``--log-format``
options; it also sets up the package's logging (scrubbed of secrets by the
run's ``Redactor``), so there is no module-level state to forget or leak
between commands run in one process (the tests run many). stdout is never
written here: it carries data only.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback

import click

from ..redaction import RedactingFilter, Redactor

__all__ = ["Console"]

#: the operator's own messages (e.g. the end-of-run record): shown unless -q
_OPERATOR = "batch_export.cli"
#: tracebacks of internal errors: shown with -v only
_TRACEBACK = "batch_export.traceback"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


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
            handler.setFormatter(_JsonFormatter())
        else:
            handler.setFormatter(logging.Formatter("batch-export: %(levelname)s: %(message)s"))
        root = logging.getLogger("batch_export")
        root.handlers[:] = [handler]
        root.setLevel(level)
        root.propagate = False
        logging.getLogger(_OPERATOR).setLevel(logging.ERROR if quiet else min(level, logging.INFO))
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

    def record(self, message: str, *args: object) -> None:
        """An operator's record at INFO (JSON log format only), e.g. the end of a run."""
        self._log.info(message, *args)

    @staticmethod
    def traceback(exc: BaseException, redactor: Redactor) -> None:
        """The traceback of an internal error, scrubbed, for ``-v`` only."""
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        logging.getLogger(_TRACEBACK).info("traceback:\n%s", redactor(trace))
