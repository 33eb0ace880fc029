"""The simulator's mutable world: data requests, RNGs, the rate limit, counters.

Per-request state is one small slots object in a dict keyed by request ID, so
a million requests cost a few hundred MB at most and every lookup is O(1).
All times are on the event loop's clock (``loop.time()``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

from .auth import JwtIssuer, account_of
from .config import JUNK_BEHAVIOURS, JUNK_FOREVER, SimulatorConfig
from .exports import ExportSpec
from .ratelimit import make_limiter
from .signing import ReportSigner
from .stats import Stats
from .wire import Wire

__all__ = ["DataRequest", "SimState"]

# Behaviours that change the export's bytes (the others change how, or whether, it is served).
_BODY_BEHAVIOURS = frozenset({"wrong-id", "wrong-type", "no-info", "not-json", "short-body"})


OutageHook = Callable[[float, "asyncio.BaseTransport | None"], Coroutine[Any, Any, None]]


class DataRequest:
    """One data request: what it exports, when it is ready, and when the platform loses it."""

    __slots__ = ("created_at", "forgotten_at", "kind", "ready_at", "target")

    def __init__(
        self,
        kind: str,
        target: str,
        created_at: float,
        ready_at: float,
        forgotten_at: float = math.inf,
    ) -> None:
        self.kind = kind
        self.target = target
        self.created_at = created_at
        self.ready_at = ready_at
        #: from then on the platform answers as for an unknown ID (--forget-rate)
        self.forgotten_at = forgotten_at


class SimState:
    """Everything the handlers share; one instance per simulated platform."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.delay = config.delay
        self.stats = Stats(config.record_requests)
        self.requests: dict[str, DataRequest] = {}
        seed = config.seed
        self._rng_delay = random.Random(f"delay:{seed}")
        self._rng_fault = random.Random(f"fault:{seed}")
        self._rng_rid = random.Random(f"rid:{seed}")
        # its own stream, so a forget rate leaves the delays and IDs of a seed as they were
        self._rng_forget = random.Random(f"forget:{seed}")
        secret = hashlib.sha256(f"sim-jwt:{seed}:{config.token}".encode()).digest()
        self.jwt = JwtIssuer(secret, config.jwt_lifetime)
        self.account = account_of(config.token)
        self.expire_after = math.inf if config.expire_after is None else config.expire_after
        self.base_url = ""  # set once the server listens
        self.started_at = 0.0
        self.session: aiohttp.ClientSession | None = None  # for webhooks
        self.tasks: set[asyncio.Task[None]] = set()
        self.sha_cache: dict[tuple[str, str, int, str | None], str] = {}
        self.wire = Wire(config, self.stats)
        self.rate_limit = (
            make_limiter(self.wire.limit_shape(), config.rate_limit, config.burst)
            if config.rate_limit
            else None
        )
        #: signs report POSTs (its key is only generated when first used)
        self.signer = ReportSigner(seed, config.account_id)
        self.junk_gets: Counter[str] = Counter()  # junk answers played per junk target
        # Set by the Simulator (server.py): start an outage of S seconds, sparing one transport.
        self.outage_hook: OutageHook | None = None
        #: until when (the loop's clock) every API call is refused as overload (/_sim/overload)
        self.overloaded_until = -math.inf

    def now(self) -> float:
        """The event loop's clock."""
        return asyncio.get_running_loop().time()

    def new_rid(self, style: str = "numeric") -> str:
        """A new, unique request ID from the seeded RNG.

        'numeric' (the default, what the vendor's own client expects in
        X-Created): a positive integer of 7-10 digits as a decimal string.
        'opaque': 'dr_' + 20 base32 characters.
        """
        while True:
            if style == "numeric":
                rid = str(self._rng_rid.randrange(1_000_000, 10_000_000_000))
            else:
                raw = self._rng_rid.getrandbits(100).to_bytes(13, "big")
                rid = "dr_" + base64.b32encode(raw).decode("ascii")[:20].lower()
            if rid not in self.requests:
                return rid

    def create(self, kind: str, target: str, key: str | None = None) -> tuple[str, DataRequest]:
        """Register a new data request with a sampled preparation delay.

        `key` is the "kind:id" string the POST already counted under; sharing it
        keeps a million requests' counters from holding a million extra strings.
        """
        now = self.now()
        delay = max(0.0, self.delay.sample(self._rng_delay))
        forgotten_at = math.inf
        rate = self.config.forget_rate
        if (rate > 0 and self._rng_forget.random() < rate) or self.wire.forgets():
            # lost at a random moment while it is being prepared: never ready
            forgotten_at = now + delay * self._rng_forget.random()
            self.stats.forgotten += 1
        req = DataRequest(kind, target, now, now + delay, forgotten_at)
        rid = self.new_rid(self.wire.request_id_style())
        self.requests[rid] = req
        self.stats.created += 1
        self.stats.created_per_target[key or f"{kind}:{target}"] += 1
        return rid, req

    def draw_fault(self) -> str | None:
        """The fault to inject into this datarequest call, if any (seeded).

        The configured faults first; then, in the mixed wire, a rare empty reply.
        """
        cfg = self.config
        kind: str | None = None
        if cfg.fault_rate > 0 and cfg.fault_kinds and self._rng_fault.random() < cfg.fault_rate:
            kind = cfg.fault_kinds[self._rng_fault.randrange(len(cfg.fault_kinds))]
        elif self.wire.empty_reply():
            kind = "empty"
        if kind is None:
            return None
        self.stats.faults[kind] += 1
        if kind == "empty":
            self.stats.wire["empty-reply"] += 1
        return kind

    def behaviour(self, target: str) -> str | None:
        """The hostile behaviour configured for a target, if any."""
        return self.config.behaviours.get(target) if self.config.behaviours else None

    def spec_for(self, req: DataRequest) -> ExportSpec:
        """What the export of a data request consists of.

        Behaviours that only change how the export is delivered (trickle, the
        junk answers) leave its bytes as they are.
        """
        cfg = self.config
        behaviour = self.behaviour(req.target)
        if behaviour is not None and behaviour not in _BODY_BEHAVIOURS:
            behaviour = None
        return ExportSpec(
            cfg.seed,
            req.kind,
            req.target,
            cfg.size_for(req.target),
            id_as_string=cfg.id_as_string,
            behaviour=behaviour,
        )

    def junk_for(self, req: DataRequest) -> str | None:
        """The junk behaviour to play on this GET of a ready export, if any (counted)."""
        behaviour = self.behaviour(req.target)
        if behaviour is None or behaviour not in JUNK_BEHAVIOURS:
            return None
        times = self.config.junk_times
        if times != JUNK_FOREVER and self.junk_gets[req.target] >= times:
            return None
        self.junk_gets[req.target] += 1
        return behaviour

    def phase(self, req: DataRequest, now: float) -> str:
        """'pending', 'ready', 'expired' or 'forgotten' (answered as an unknown ID)."""
        if now >= req.forgotten_at:
            return "forgotten"
        if now < req.ready_at:
            return "pending"
        if now - req.ready_at >= self.expire_after:
            return "expired"
        return "ready"
