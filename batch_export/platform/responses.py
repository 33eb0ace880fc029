"""Reading the platform's answers: pure functions over status, headers and bytes.

Nothing here does I/O. The client hands over what arrived and gets back what
it means: the new request's ID, how long a throttled caller should wait,
whether a 503 is the load balancer saying "slower", a short readable reason
from an error body of any shape, and whether a body is the "not ready yet"
placeholder. Keeping the interpretation here, apart from the sending, means
each reading of the docs is stated once and tested without a server.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

from yarl import URL

from ..errors import (
    AuthError,
    ExportError,
    RateLimitedError,
    RequestGoneError,
    TargetError,
    TransientError,
)
from ..redaction import redact_url

__all__ = [
    "CHUNK_BYTES",
    "ERROR_BODY_LIMIT",
    "MAX_REDIRECTS",
    "PEEK_BYTES",
    "PLACEHOLDER_MAX_BYTES",
    "REDIRECT_STATUSES",
    "error_for_status",
    "is_overload",
    "is_placeholder",
    "is_placeholder_document",
    "next_hop",
    "parse_retry_after",
    "readable_error",
    "redirect_target",
    "request_id_from",
]

#: bodies up to this size are read whole to tell a placeholder from an export
PEEK_BYTES = 64 * 1024
#: error bodies are read up to this size and no further (some proxies send megabytes)
ERROR_BODY_LIMIT = 64 * 1024
#: chunk size asked of aiohttp while streaming an export (downloads and push deliveries)
CHUNK_BYTES = 256 * 1024
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})
#: the placeholder is a one-line JSON object; anything longer is treated as an export
#: (and the store's check still refuses a placeholder), so exports are not parsed twice
PLACEHOLDER_MAX_BYTES = 4096
#: a request ID longer than this, or with one of these characters, cannot be used in a path
_RID_MAX = 200
_RID_FORBIDDEN = frozenset("/?#\x00\r\n")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
#: what the platform's load balancer says when it sheds load (API notes, "Observed in the field")
_OVERLOAD_WORDS = re.compile(rb"loadbalancer|load balancer|too many requests", re.IGNORECASE)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    reference = time.time() if now is None else now
    return max(0.0, when.timestamp() - reference)


def is_placeholder_document(document: object) -> bool:
    """The placeholder rule: an object whose ``data`` is a string is *not ready yet*.

    Whatever else it carries (``info`` or not) and however the text is worded
    ("Data not available (yet)", with or without a period, v1's "no data
    available (yet)."): only an object whose ``data`` is an array is an export.
    """
    return isinstance(document, dict) and isinstance(document.get("data"), str)


def is_placeholder(body: bytes) -> bool:
    """Whether a body held whole is the placeholder (see ``is_placeholder_document``)."""
    if len(body) > PLACEHOLDER_MAX_BYTES or b'"data"' not in body:
        return False
    try:
        return is_placeholder_document(json.loads(body))
    except ValueError:
        return False


def is_overload(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    """A 503/504 that is the platform shedding load rather than one call failing.

    The live platform signals overload as 503 or 504 with an HTML
    "Loadbalancer Error" page and a header mentioning "too many requests to
    handle", never as a 429. A 503/504 with no body, with an HTML body or
    with those words anywhere counts; one that carries the platform's own
    JSON error object (``{"error": {...}}``) is a failure of that call.
    """
    if status not in (503, 504):
        return False
    if any(
        _OVERLOAD_WORDS.search(value.encode("latin-1", "replace")) for value in headers.values()
    ):
        return True
    text = body.strip()
    if not text or _OVERLOAD_WORDS.search(text):
        return True
    try:
        document = json.loads(text)
    except ValueError:
        return True  # an HTML (or other non-JSON) page comes from the load balancer, not the API
    return not (isinstance(document, dict) and "error" in document)


def request_id_from(headers: Mapping[str, str], body: bytes) -> str | None:
    """The new data request's ID from a POST's answer, or None when it has no usable one.

    Read from ``X-Created``, else the last path segment of ``X-location`` or
    ``Location``, else a JSON (``{"id": ...}``, a bare string or number) or
    plain-text body. The ID is opaque: only what cannot go into a URL path is
    refused.
    """
    rid = headers.get("X-Created", "").strip()
    if not rid:
        location = (headers.get("X-location") or headers.get("Location") or "").strip()
        rid = location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] if location else ""
    if not rid:
        rid = _rid_from_body(body)
    if not rid or len(rid) > _RID_MAX or any(ch in _RID_FORBIDDEN for ch in rid):
        return None
    return rid


def _rid_from_body(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return ""
    try:
        document = json.loads(text)
    except ValueError:
        return text if len(text) <= _RID_MAX and " " not in text and "<" not in text else ""
    if isinstance(document, bool):
        return ""
    if isinstance(document, (str, int)):
        return str(document)
    if isinstance(document, dict):
        for key in ("id", "ID", "requestid", "request_id"):
            value = document.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                return str(value)
    return ""


def clean_text(text: str, limit: int = 300) -> str:
    """``text`` on one line without control characters, cut to ``limit`` characters."""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def readable_error(body: bytes, content_type: str) -> str:
    """A short readable reason from an error body of any shape."""
    text = body.decode("utf-8", "replace")
    if not text.strip():
        return "empty body"
    try:
        document = json.loads(text)
    except ValueError:
        if "html" in content_type.lower() or text.lstrip()[:1] == "<":
            if _OVERLOAD_WORDS.search(body):
                return (
                    "the platform's load balancer is overloaded (an HTML 'Loadbalancer Error' page)"
                )
            return "an HTML page instead of the platform's JSON (a proxy or gateway?)"
        return clean_text(text)
    if isinstance(document, dict):
        error = document.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return clean_text(error["message"])
        if isinstance(error, str):
            return clean_text(error)
        if isinstance(document.get("message"), str):
            return clean_text(document["message"])
    return clean_text(text)


def error_for_status(
    status: int, headers: Mapping[str, str], body: bytes, where: str, message: str
) -> ExportError:
    """What an error status means: the error class decides what happens next.

    ``where`` is "METHOD endpoint"; ``message`` the readable (redacted) reason.
    """
    text = f"HTTP {status} from {where}: {message}"
    if status in (401, 403):
        return AuthError(f"the platform rejected the credentials ({text})")
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status == 429 or is_overload(status, headers, body):
        return RateLimitedError(text, retry_after=retry_after, status=status)
    if status in _RETRYABLE_STATUSES:
        return TransientError(text, status=status)
    if status == 404 and where == "GET datarequest":
        return RequestGoneError(f"the platform no longer knows this request ({text})", status=404)
    return TargetError(text, status=status)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = URL(url)
    return (parts.scheme, (parts.host or "").lower(), parts.explicit_port or parts.port)


def redirect_target(current: str, location: str, api_url: str, status: int) -> str:
    """Where a redirect leads, if it may be followed with the credentials (else TargetError).

    Only within the configured API host: following elsewhere would hand the
    token (query or header) to another host. Any credential the Location
    carries is dropped; the client adds its own on the next hop.
    """
    if not location:
        raise TargetError(f"HTTP {status} redirect without a Location header")
    target = urljoin(current, location)
    if _origin(target) != _origin(api_url):
        raise TargetError(
            f"the platform redirected to another host ({_origin(target)[1] or '?'}); "
            "not following it with the credentials — check --api-url"
        )
    parts = urlsplit(target)
    kept = "&".join(
        p for p in parts.query.split("&") if p and not p.lower().startswith("access_token=")
    )
    return parts._replace(query=kept, fragment="").geturl()


def next_hop(
    headers: Mapping[str, str], current: str, method: str, hops: int, api_url: str, status: int
) -> str:
    """Where redirect number ``hops`` leads, if it may be followed (else TargetError)."""
    if hops > MAX_REDIRECTS:
        raise TargetError(f"more than {MAX_REDIRECTS} redirects for {method} {redact_url(current)}")
    location = headers.get("Location") or headers.get("X-location") or ""
    return redirect_target(current, location, api_url, status)
