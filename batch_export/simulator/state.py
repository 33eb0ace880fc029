"""The simulator's mutable world: data requests, RNGs, buckets, counters.

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

import aiohttp

from .auth import JwtIssuer, account_of
from .config import SimulatorConfig
from .exports import ExportSpec
from .ratelimit import TokenBuckets
from .stats import Stats

__all__ = ["DataRequest", "SimState"]


class DataRequest:
    """One data request: what it exports and when it is ready."""

    __slots__ = ("created_at", "kind", "ready_at", "target")

    def __init__(self, kind: str, target: str, created_at: float, ready_at: float) -> None:
        self.kind = kind
        self.target = target
        self.created_at = created_at
        self.ready_at = ready_at


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
        self.buckets = TokenBuckets(config.rate_limit, config.burst) if config.rate_limit else None
        secret = hashlib.sha256(f"sim-jwt:{seed}:{config.token}".encode()).digest()
        self.jwt = JwtIssuer(secret, config.jwt_lifetime)
        self.account = account_of(config.token)
        self.expire_after = math.inf if config.expire_after is None else config.expire_after
        self.base_url = ""  # set once the server listens
        self.started_at = 0.0
        self.session: aiohttp.ClientSession | None = None  # for webhooks
        self.tasks: set[asyncio.Task[None]] = set()
        self.sha_cache: dict[tuple[str, str, int, str | None], str] = {}

    def now(self) -> float:
        """The event loop's clock."""
        return asyncio.get_running_loop().time()

    def new_rid(self) -> str:
        """An opaque request ID: 'dr_' + 20 base32 characters from the seeded RNG."""
        while True:
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
        req = DataRequest(kind, target, now, now + delay)
        rid = self.new_rid()
        self.requests[rid] = req
        self.stats.created += 1
        self.stats.created_per_target[key or f"{kind}:{target}"] += 1
        return rid, req

    def draw_fault(self) -> str | None:
        """The fault to inject into this datarequest call, if any (seeded)."""
        cfg = self.config
        if cfg.fault_rate <= 0 or not cfg.fault_kinds:
            return None
        if self._rng_fault.random() >= cfg.fault_rate:
            return None
        kind = cfg.fault_kinds[self._rng_fault.randrange(len(cfg.fault_kinds))]
        self.stats.faults[kind] += 1
        return kind

    def behaviour(self, target: str) -> str | None:
        """The hostile behaviour configured for a target, if any."""
        return self.config.behaviours.get(target) if self.config.behaviours else None

    def spec_for(self, req: DataRequest) -> ExportSpec:
        """What the export of a data request consists of."""
        cfg = self.config
        return ExportSpec(
            cfg.seed,
            req.kind,
            req.target,
            cfg.size_for(req.target),
            id_as_string=cfg.id_as_string,
            behaviour=self.behaviour(req.target),
        )

    def phase(self, req: DataRequest, now: float) -> str:
        """'pending', 'ready' or 'expired'."""
        if now < req.ready_at:
            return "pending"
        if now - req.ready_at >= self.expire_after:
            return "expired"
        return "ready"
