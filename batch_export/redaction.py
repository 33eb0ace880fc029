"""Keeping the access token and JWTs out of every output.

v1–v3 put the account's token in the query string of every URL, and aiohttp
copies full URLs into its exception texts, so the rule is: secrets live in a
``Secret`` (whose str/repr are masked), URLs are passed through ``redact_url``
before they reach any message, and text that came from elsewhere (a server's
error body, a log record) is scrubbed by ``Redactor`` as a last line of defence.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "RedactingFilter", "Redactor", "Secret", "redact_url"]

MASK = "***"

_SECRET_PARAMS = frozenset({"access_token", "token", "jwt"})


class Secret:
    """A string that refuses to be printed; ``reveal()`` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only for building a request."""
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __bool__(self) -> bool:
        return bool(self._value)


def redact_url(url: str) -> str:
    """The URL with every secret query parameter's value masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    masked = [(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs]
    return urlunsplit(parts._replace(query=urlencode(masked, safe="*")))


class Redactor:
    """Replaces known secret strings (the token, every JWT seen) in arbitrary text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secret: str) -> None:
        """Remember one more value that must never be shown."""
        if len(secret) < 4 or secret in self._secrets:
            return
        self._secrets.add(secret)
        alternatives = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in alternatives))

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs secrets from every record's final message."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self._redact(message)
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        if record.exc_info:
            # Tracebacks are never shown to users; keep only the class name.
            exc = record.exc_info[1]
            record.msg = f"{record.msg} ({type(exc).__name__})"
            record.exc_info = None
            record.exc_text = None
        return True
