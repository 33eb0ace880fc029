"""The account's rate limit, remembered between runs.

A run that found the limit by searching writes it down twice: beside the
journal (``limit.json`` in the output directory, so a resumed run has it) and
in the user's cache directory (``limits.json``, so next month's archive or
another output directory has it too). The next run against the same account
starts its search there instead of at the bottom, and re-confirms it (see
``LimitSearch``: a remembered pace counts as working only after it ran clean).

The account is named by the API's origin and version plus a *keyed* hash of
the token: HMAC-SHA256 under a random secret that lives owner-only in the
cache directory. Neither the token nor a plain hash of it (which could be
matched against a leaked token) is ever written. Without a usable cache
directory nothing is remembered. Every file is written owner-only and
replaced atomically; one that cannot be read or parsed is ignored (logged at
debug level), never an error: the limit is a hint, the search still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yarl import URL

from .limits import RateLimiter
from .settings import ApiSettings

__all__ = ["CACHE_ENV", "KnownLimit", "LimitMemory", "default_cache_dir", "remembering_limiter"]

log = logging.getLogger(__name__)

#: overrides the cache directory (tests point it at a temporary one)
CACHE_ENV = "BATCH_EXPORT_CACHE_DIR"
OUT_FILE = "limit.json"
CACHE_FILE = "limits.json"
KEY_FILE = "limit-key"
#: at most this many accounts are kept in the cache file (the oldest go first)
MAX_ACCOUNTS = 100


def default_cache_dir() -> Path:
    """``$BATCH_EXPORT_CACHE_DIR``, else the platform's user cache directory for batch-export."""
    if env := os.environ.get(CACHE_ENV):
        return Path(env)
    import platformdirs  # only when a run remembers: not on every CLI start

    return Path(platformdirs.user_cache_dir("batch-export"))


@dataclass(frozen=True)
class KnownLimit:
    """A remembered pace (requests per second) and where it was read from."""

    rate: float
    saved: float
    source: str  # "output directory" or "cache"


class LimitMemory:
    """Reads and writes the remembered limit of one account (origin, version, token)."""

    def __init__(
        self, api_url: str, api_version: int, token: str, out_dir: Path, cache_dir: Path
    ) -> None:
        self.out_file = out_dir / OUT_FILE
        self.cache_dir = cache_dir
        self.cache_file = cache_dir / CACHE_FILE
        url = URL(api_url)
        self._origin = f"{url.scheme}://{url.host}:{url.port}/v{api_version}"
        self._token = token
        self._key: str | None = None
        self._saving: set[asyncio.Future[None]] = set()
        self._saved: float | None = None
        self._recalled: float | None = None  # the pace this run started from, if any

    def __repr__(self) -> str:  # the key, never the token
        return f"<LimitMemory {self._origin} out={self.out_file} cache={self.cache_file}>"

    def key(self) -> str | None:
        """The account's name in the files; None when the cache directory holds no secret."""
        if self._key is None:
            secret = self._secret()
            if secret is None:
                return None
            digest = hmac.new(secret, self._token.encode("utf-8"), hashlib.sha256).hexdigest()
            self._key = f"{self._origin}#{digest}"
        return self._key

    def recall(self) -> KnownLimit | None:
        """The most recently saved pace for this account, from either file, or None."""
        key = self.key()
        if key is None:
            return None
        found: list[KnownLimit] = []
        beside = _read(self.out_file)
        if beside.get("key") == key:
            found += _entry(beside, "output directory")
        accounts = _read(self.cache_file).get("accounts")
        if isinstance(accounts, dict) and isinstance(accounts.get(key), dict):
            found += _entry(accounts[key], "cache")
        known = max(found, key=lambda known: known.saved, default=None)
        self._recalled = None if known is None else known.rate
        return known

    def remember(self, rate: float) -> None:
        """Save ``rate`` in both files (failures are logged at debug level and ignored)."""
        key = self.key()
        if key is None or not rate > 0:
            return
        entry = {"rate": round(rate, 3), "saved": time.time()}
        _write(self.out_file, {"key": key, **entry})
        accounts = _read(self.cache_file).get("accounts")
        kept = dict(accounts) if isinstance(accounts, dict) else {}
        kept.pop(key, None)
        kept[key] = entry
        _write(self.cache_file, {"accounts": dict(list(kept.items())[-MAX_ACCOUNTS:])})

    def remember_soon(self, rate: float) -> None:
        """Save ``rate`` in a worker thread (the event loop does not wait for the fsyncs)."""
        if rate == self._saved:
            return
        self._saved = rate
        saving = asyncio.get_running_loop().run_in_executor(None, self.remember, rate)
        self._saving.add(saving)
        saving.add_done_callback(self._saving.discard)

    async def flush(self, rate: float | None = None, fell_to: float | None = None) -> None:
        """Save ``rate`` (if it is news) and wait for every save still under way.

        Without a settled ``rate``, a pace the search ``fell_to`` under the one
        remembered (saved by this run, or recalled at its start) is saved
        instead: a limit found too high would cost the next run a refusal.
        """
        known = self._saved if self._saved is not None else self._recalled
        if rate is None and fell_to is not None and known is not None and fell_to < known:
            rate = fell_to
        if rate is not None:
            self.remember_soon(rate)
        if self._saving:
            await asyncio.gather(*self._saving)

    def _secret(self) -> bytes | None:
        """The per-user HMAC secret, made on first use (owner-only); None if impossible."""
        path = self.cache_dir / KEY_FILE
        try:
            self.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                secret = path.read_bytes()
            else:
                secret = secrets.token_bytes(32)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(secret)
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as exc:
            log.debug("no remembered limits: cache directory %s unusable (%s)", self.cache_dir, exc)
            return None
        if len(secret) < 16:  # a half-written or foreign file: do not key with it
            log.debug("no remembered limits: %s is not a usable secret", path)
            return None
        return secret


def _entry(document: dict[str, Any], source: str) -> list[KnownLimit]:
    """The one KnownLimit in ``document`` (empty when its fields are not sane numbers)."""
    rate, saved = document.get("rate"), document.get("saved")
    if isinstance(rate, (int, float)) and isinstance(saved, (int, float)) and rate > 0:
        return [KnownLimit(float(rate), float(saved), source)]
    log.debug("ignoring a remembered limit without a usable rate (%s)", source)
    return []


def _read(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} when it is missing, unreadable or not an object."""
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.debug("ignoring %s: %s", path, exc)
        return {}
    return document if isinstance(document, dict) else {}


def _write(path: Path, document: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``document``, owner-only."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        log.debug("could not remember the limit in %s: %s", path, exc)
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)


def remembering_limiter(
    rate: float | None,
    burst: int,
    api: ApiSettings,
    out_dir: Path,
    cache_dir: Path | None,
) -> tuple[RateLimiter, LimitMemory | None]:
    """The run's limiter, starting from the remembered limit when ``rate`` is None.

    A ``--rate`` wins: it is used as given and nothing is read or remembered.
    Otherwise the memory (returned too, to save what the run learns) gives
    the search its start, and the limiter saves the pace each time it settles.
    """
    if rate is not None:
        return RateLimiter(rate, burst=burst), None
    memory = LimitMemory(
        api.api_url, api.api_version, api.token.reveal(), out_dir, cache_dir or default_cache_dir()
    )
    known = memory.recall()
    limiter = RateLimiter(
        None, burst=burst, start=known.rate if known else None, on_settled=memory.remember_soon
    )
    if known is not None:
        limiter.origin = f"remembered ({known.source})"
        log.info(
            "starting at the account's remembered limit: %g req/s (%s)", known.rate, known.source
        )
    return limiter, memory
