"""Where the platform is and how to talk to it: ``ApiSettings``, validated once, when built.

Every knob of the connection lives here with its default and its check, so a
bad value is refused before the first request with a message that says how
to fix it — including the one that matters most: on API v4 the access token
is only ever sent to an auth endpoint the user named (or the platform's own
next to the platform's own API host).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from ..errors import ConfigError
from ..redaction import Secret

__all__ = ["DEFAULT_API_URL", "DEFAULT_AUTH_URL", "ApiSettings"]

DEFAULT_API_URL = "https://api.copernica.com"
DEFAULT_AUTH_URL = "https://authenticate.copernica.com"
#: the platform's own hosts, which may be used with the default auth endpoint
_PLATFORM_DOMAIN = "copernica.com"


@dataclass(frozen=True)
class ApiSettings:
    """Where the platform is and how to talk to it; validated when built."""

    api_url: str = DEFAULT_API_URL
    api_version: int = 2
    auth_url: str = DEFAULT_AUTH_URL
    #: the caller named ``auth_url`` (``--auth-url``, ``COPERNICA_AUTH_URL``), even if it is
    #: the platform's own: then it may receive the token next to any ``api_url``
    auth_url_named: bool = False
    token: Secret = field(default_factory=lambda: Secret(""))
    insecure: bool = False
    connect_timeout: float = 15.0
    #: longest silence while reading a response: a stalled body fails, a slow one does not
    read_timeout: float = 60.0
    #: cap on a whole non-streaming call (submit, ID listing)
    call_timeout: float = 120.0
    #: a download slower than this many bytes per second over ``download_window`` is cut
    download_floor: float = 1024.0
    download_window: float = 30.0
    #: a download with a Content-Length is cut after call_timeout + length / this rate
    #: (8 KB/s: generous, since the floor already cuts what crawls)
    download_deadline_rate: float = 8 * 1024.0
    #: how long an unreachable platform is waited for mid-run before the run stops
    outage_timeout: float = 900.0
    #: the same before anything was reached in this run (a wrong URL, no network)
    startup_timeout: float = 15.0

    def __post_init__(self) -> None:
        if self.api_version not in (1, 2, 3, 4):
            raise ConfigError(
                f"unknown --api-version {self.api_version}; use 2, 3 or 4 (1 also works)"
            )
        for name in (
            "connect_timeout",
            "read_timeout",
            "call_timeout",
            "download_window",
            "download_deadline_rate",
            "outage_timeout",
            "startup_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name.replace('_', ' ')} must be greater than 0")
        if self.download_floor < 0:
            raise ConfigError("download floor must be 0 (off) or more bytes per second")
        if (
            self.api_version == 4
            and self.auth_url == DEFAULT_AUTH_URL
            and not self.auth_url_named
            and not _is_platform_host(self.api_url)
        ):
            host = urlsplit(self.api_url).hostname or self.api_url
            raise ConfigError(
                f"--api-url points at {host}, but --auth-url is still the platform's "
                f"{DEFAULT_AUTH_URL}: the access token would be sent to a host you did not "
                f"name; pass --auth-url too (e.g. --auth-url {self.api_url.rstrip('/')}/authenticate, "
                f"or --auth-url {DEFAULT_AUTH_URL} to send it there on purpose)"
            )

    def call_timeouts(self) -> aiohttp.ClientTimeout:
        """The timeouts of one non-streaming call (submit, listing, the JWT exchange).

        A per-request timeout replaces the session's, so it restates connect and
        sock_read: without them a connect that hangs is a plain timeout, not an outage.
        """
        return aiohttp.ClientTimeout(
            total=self.call_timeout, connect=self.connect_timeout, sock_read=self.read_timeout
        )

    def session_timeouts(self) -> aiohttp.ClientTimeout:
        """The session's timeouts: no total (an export may take long), connect and sock_read."""
        return aiohttp.ClientTimeout(
            total=None, connect=self.connect_timeout, sock_read=self.read_timeout
        )

    @property
    def base(self) -> str:
        return f"{self.api_url.rstrip('/')}/v{self.api_version}/"


def _is_platform_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == _PLATFORM_DOMAIN or host.endswith("." + _PLATFORM_DOMAIN)
