"""Where the platform's signing keys come from: DKIM TXT records, looked up once per run.

``DnsKeys`` asks a DNS resolver (the system's, or ``--push-dns-server``) for
the TXT record a signature's ``keyId`` names. A delivery only gets here
after it knew the secret path and passed every local check, but a leaked
path must still not turn into unbounded DNS traffic, so:

- every answer is cached for the run (a key, or "no such record"), in an LRU
  of at most ``cache_size`` names; a failure that may pass (timeout, no
  nameserver answering) is remembered for ``retry_after`` seconds;
- concurrent deliveries naming the same keyId share one lookup;
- at most ``max_lookups`` queries are sent in the whole run; after that,
  names not in the cache are refused without a query (a genuine delivery then
  falls back to polling, which costs time, never data).

``StaticKeys`` serves records given up front (the embedded simulator's key
with ``--simulate``, where there is no DNS name to ask).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from ..errors import ConfigError
from .push_signature import OriginError, parse_dkim_record

if TYPE_CHECKING:  # dnspython and cryptography are imported on first use: push mode only
    import dns.asyncresolver
    from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["DnsKeys", "KeySource", "StaticKeys", "parse_dns_server"]

log = logging.getLogger("batch_export.platform.push")

#: the public keys one keyId names (a TXT set may hold more than one record)
Keys = tuple["rsa.RSAPublicKey", ...]


class KeySource(Protocol):
    """Gives the public keys a (checked, lower-case) keyId names, or raises OriginError."""

    async def keys(self, name: str) -> Keys:
        """The keys published under ``name``."""


def parse_dns_server(value: str) -> tuple[str, int]:
    """``--push-dns-server HOST[:PORT]`` as an IP address and a port (53 by default)."""
    host, port = value.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                host = ""
            port = rest[1:]
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        address = ""
    if not address or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(
            f"--push-dns-server {value!r} is not an IP address with an optional port, "
            "e.g. 127.0.0.1:5353 or [::1]:53 (a name cannot be used: it would need DNS itself)"
        )
    return address, int(port)


def _keys_of(texts: list[str]) -> Keys:
    """The usable keys among a TXT set; OriginError when there is none."""
    found: list[rsa.RSAPublicKey] = []
    problem = OriginError("the keyId names no DKIM record")
    for text in texts:
        try:
            found.append(parse_dkim_record(text))
        except OriginError as exc:
            problem = exc
    if not found:
        raise problem
    return tuple(found)


class StaticKeys:
    """Keys from records given up front: ``{name: "v=DKIM1; k=rsa; p=..."}``."""

    def __init__(self, records: Mapping[str, str]) -> None:
        self._records = {name.lower().rstrip("."): txt for name, txt in records.items()}

    async def keys(self, name: str) -> Keys:
        """The key of ``name``'s record (OriginError 401 when there is none)."""
        text = self._records.get(name)
        return _keys_of([] if text is None else [text])


class DnsKeys:
    """DKIM keys from DNS: cached per run, lookups shared and capped (module docstring)."""

    def __init__(
        self,
        nameserver: tuple[str, int] | None = None,
        *,
        cache_size: int = 32,
        max_lookups: int = 64,
        lifetime: float = 3.0,
        retry_after: float = 10.0,
    ) -> None:
        self._nameserver = nameserver
        self._lifetime = lifetime
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._cache: OrderedDict[str, tuple[Keys | OriginError, float]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[Keys]] = {}
        self._cache_size = cache_size
        self._max_lookups = max_lookups
        self._retry_after = retry_after
        #: DNS queries sent so far in this run
        self.lookups = 0

    def __repr__(self) -> str:
        return (
            f"DnsKeys(cached={len(self._cache)}, pending={len(self._pending)}, "
            f"lookups={self.lookups}/{self._max_lookups})"
        )

    async def keys(self, name: str) -> Keys:
        """The keys under ``name``: from the cache, a lookup under way, or a new one."""
        now = asyncio.get_running_loop().time()
        cached = self._cache.get(name)
        if cached is not None and cached[1] > now:
            self._cache.move_to_end(name)
            if isinstance(cached[0], OriginError):
                raise cached[0]
            return cached[0]
        pending = self._pending.get(name)
        if pending is None:
            if self.lookups >= self._max_lookups:
                raise OriginError(
                    f"{self._max_lookups} DKIM lookups were made in this run already; "
                    "a keyId not seen before is not looked up",
                    503,
                )
            self.lookups += 1
            pending = asyncio.ensure_future(self._lookup(name))
            self._pending[name] = pending
            pending.add_done_callback(lambda done: self._settled(name, done))
        # Shielded: one delivery going away must not cancel the lookup the others wait for.
        return await asyncio.shield(pending)

    def _settled(self, name: str, done: asyncio.Future[Keys]) -> None:
        self._pending.pop(name, None)
        if not done.cancelled():
            done.exception()  # retrieved: its waiters may all have gone away

    def _resolver_now(self) -> dns.asyncresolver.Resolver:
        """The resolver, made on first use: reading the system's configuration may fail."""
        if self._resolver is None:
            import dns.asyncresolver  # ~10 MB: loaded only when a signed delivery comes

            resolver = dns.asyncresolver.Resolver(configure=self._nameserver is None)
            if self._nameserver is not None:
                resolver.nameservers = [self._nameserver[0]]
                resolver.port = self._nameserver[1]
            resolver.lifetime = self._lifetime
            self._resolver = resolver
        return self._resolver

    async def _lookup(self, name: str) -> Keys:
        import dns.exception
        import dns.name
        import dns.rdatatype
        import dns.resolver

        loop = asyncio.get_running_loop()
        forever = float("inf")
        try:
            answer = await self._resolver_now().resolve(
                dns.name.from_text(name), dns.rdatatype.TXT, search=False
            )
            texts = [b"".join(r.strings).decode("ascii", "replace") for r in answer]
            result: Keys | OriginError = _keys_of(texts)
            until = forever
        except OriginError as exc:
            result, until = exc, forever
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            result, until = OriginError("the keyId names no DKIM record"), forever
        except dns.resolver.NoResolverConfiguration:
            log.warning("push: no system DNS resolver is configured: give --push-dns-server")
            reason = "no DNS resolver to look up the keyId with"
            result, until = OriginError(reason, 503), loop.time() + self._retry_after
        except dns.exception.DNSException as exc:
            log.warning(
                "push: the DKIM key %s could not be looked up: %s", name, type(exc).__name__
            )
            reason = "the keyId's DKIM record could not be looked up just now"
            result, until = OriginError(reason, 503), loop.time() + self._retry_after
        self._cache[name] = (result, until)
        self._cache.move_to_end(name)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        if isinstance(result, OriginError):
            raise result
        return result
