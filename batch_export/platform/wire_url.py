"""The URL object of each request, built from parts instead of parsed from a string.

aiohttp wants a ``yarl.URL``. Parsing one from a string costs ~2.7 µs, two
requests per export; every request of a run but a redirect's goes under the
same API base, so its scheme, authority and path prefix are split once and
each URL is assembled from them (~1.3 µs). A URL outside the base (a
redirect's next hop) is parsed as before.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from yarl import URL

__all__ = ["WireUrls"]


class WireUrls:
    """``URL(url, encoded=True)`` for URLs under ``base``, at half the cost."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self._base = base
        self._scheme = parts.scheme
        self._authority = parts.netloc
        self._prefix = parts.path
        # Only a plain base is assembled (no query or fragment of its own).
        self._plain = bool(parts.scheme and parts.netloc) and not (parts.query or parts.fragment)

    def url(self, url: str) -> URL:
        """``url`` (already percent-encoded) as the URL aiohttp sends."""
        if self._plain and url.startswith(self._base) and "#" not in url:
            path, _, query = url[len(self._base) :].partition("?")
            return URL.build(
                scheme=self._scheme,
                authority=self._authority,
                path=self._prefix + path,
                query_string=query,
                encoded=True,
            )
        return URL(url, encoded=True)
