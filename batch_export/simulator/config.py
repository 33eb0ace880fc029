"""The simulator's configuration: one frozen dataclass and its checks.

Everything that makes one simulated platform behave differently from another
(limits, delays, sizes, faults, hostile targets) lives in one frozen
dataclass, so a test can state the world it runs in in one expression and the
CLI only has to parse strings into it. The accepted values it checks against
are in constants.py, the delay and size parsers in specs.py; both are
re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .constants import (
    AUTH_FAULT_KINDS,
    BEHAVIOURS,
    DEFAULT_AUTH_FAULT_KINDS,
    DEFAULT_COLLECTIONS,
    DEFAULT_DATABASES,
    DEFAULT_FAULT_KINDS,
    DEFAULT_TOKEN,
    FAULT_KINDS,
    JUNK_BEHAVIOURS,
    JUNK_FOREVER,
    LIMIT_SHAPES,
    MIXED_GROUPS,
    MIXED_RATES,
    PLACEHOLDER_WORDINGS,
    POST_STATUSES,
    REQUEST_ID_PLACES,
    REQUEST_ID_STYLES,
    THROTTLE_STYLES,
    WIRES,
)
from .specs import (
    DelayDistribution,
    FixedDelay,
    LongTailDelay,
    UniformDelay,
    parse_delay,
    parse_size,
)

__all__ = [
    "AUTH_FAULT_KINDS",
    "BEHAVIOURS",
    "DEFAULT_AUTH_FAULT_KINDS",
    "DEFAULT_COLLECTIONS",
    "DEFAULT_DATABASES",
    "DEFAULT_FAULT_KINDS",
    "DEFAULT_TOKEN",
    "FAULT_KINDS",
    "JUNK_BEHAVIOURS",
    "JUNK_FOREVER",
    "LIMIT_SHAPES",
    "MIXED_GROUPS",
    "MIXED_RATES",
    "PLACEHOLDER_WORDINGS",
    "POST_STATUSES",
    "REQUEST_ID_PLACES",
    "REQUEST_ID_STYLES",
    "THROTTLE_STYLES",
    "WIRES",
    "DelayDistribution",
    "FixedDelay",
    "LongTailDelay",
    "SimulatorConfig",
    "UniformDelay",
    "parse_delay",
    "parse_size",
]


def _choices(name: str, value: object, accepted: tuple[object, ...]) -> None:
    if value not in accepted:
        listed = ", ".join(repr(a) for a in accepted)
        raise ValueError(f"{name}: accepted: {listed}; got {value!r}")


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulated platform behaves; see docs/simulator.md for each knob."""

    token: str = DEFAULT_TOKEN
    seed: int = 0
    rate_limit: float | None = None
    burst: int = 20
    limit_shape: str = "bucket"
    retry_after_http_date: bool = False
    prepare_delay: str | DelayDistribution = "0.5:3"
    export_size: int = 20_000
    export_sizes: Mapping[str, int] = field(default_factory=dict)
    expire_after: float | None = 600.0
    forget_rate: float = 0.0
    jwt_lifetime: float = 86400.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    slow_seconds: float = 2.0
    missing_ids: frozenset[str] = frozenset()
    id_as_string: bool = False
    behaviours: Mapping[str, str] = field(default_factory=dict)
    redirect_to: str | None = None
    databases: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_DATABASES))
    collections: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_COLLECTIONS))
    wrap_id_lists: bool = False
    record_requests: bool = True
    # --- wire variants (docs/simulator.md, "Wire variants") ---
    wire: str = "classic"
    request_id_style: str = "numeric"
    placeholder_info: bool = False
    placeholder_wording: str | None = None
    post_status: int = 201
    request_id_in: str = "x-created"
    throttle_style: str = "429"
    trickle_seconds: float = 2.0
    junk_times: int = 2
    auth_fault_rate: float = 0.0
    auth_fault_kinds: tuple[str, ...] = DEFAULT_AUTH_FAULT_KINDS
    auth_faults_first: int = 0
    outage_every: float | Literal["auto"] | None = "auto"
    outage_seconds: float = 2.0
    mixed_exclude: frozenset[str] = frozenset()
    mixed_rates: Mapping[str, float] = field(default_factory=dict)
    # --- signed report POSTs (docs/simulator.md, "Signed deliveries") ---
    sign_reports: bool = False
    account_id: int = 1

    def __post_init__(self) -> None:
        """Reject impossible worlds at construction, not at the first request."""
        self._check_limits()
        self._check_faults()
        self._check_targets()
        self._check_wire()

    def _check_limits(self) -> None:
        """The token, the rate limit, export sizes and lifetimes."""
        if not self.token:
            raise ValueError("token must not be empty")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError("rate_limit must be > 0 requests/second, or None for unlimited")
        if self.burst < 1:
            raise ValueError("burst must be >= 1")
        if self.export_size < 0 or any(v < 0 for v in self.export_sizes.values()):
            raise ValueError("export sizes must be >= 0 bytes")
        if self.expire_after is not None and self.expire_after < 0:
            raise ValueError("expire_after must be >= 0 seconds, or None for never")
        if not 0.0 <= self.forget_rate <= 1.0:
            raise ValueError("forget_rate is a probability: 0..1")
        if not self.jwt_lifetime > 0:
            raise ValueError("jwt_lifetime must be > 0 seconds")

    def _check_faults(self) -> None:
        """The datarequest fault rate, its kinds and the slow fault's delay."""
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate is a probability: 0..1")
        unknown = [k for k in self.fault_kinds if k not in FAULT_KINDS]
        if unknown or (self.fault_rate > 0 and not self.fault_kinds):
            raise ValueError(f"fault_kinds: accepted: {', '.join(FAULT_KINDS)}; got {unknown}")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must be >= 0")

    def _check_targets(self) -> None:
        """Hostile behaviours, the redirect, database/collection sizes and the delay spec."""
        bad = sorted({v for v in self.behaviours.values() if v not in BEHAVIOURS})
        if bad:
            raise ValueError(
                f"unknown behaviour(s) {bad}; accepted: {', '.join(sorted(BEHAVIOURS))}"
            )
        if self.redirect_to is not None and not self.redirect_to.startswith(
            ("http://", "https://")
        ):
            raise ValueError("redirect_to must be an http(s) base URL")
        if any(v < 0 for v in (*self.databases.values(), *self.collections.values())):
            raise ValueError("database/collection sizes must be >= 0")
        if isinstance(self.prepare_delay, str):
            parse_delay(self.prepare_delay)  # raises ValueError with the reason

    def _check_wire(self) -> None:
        self._check_wire_choices()
        self._check_hostile_timings()
        self._check_auth_faults()
        self._check_outages()
        self._check_mixed()

    def _check_wire_choices(self) -> None:
        """Each fixed wire variant is one of its accepted values."""
        _choices("wire", self.wire, WIRES)
        _choices("request_id_style", self.request_id_style, REQUEST_ID_STYLES)
        if self.placeholder_wording is not None:
            _choices("placeholder_wording", self.placeholder_wording, PLACEHOLDER_WORDINGS)
        _choices("post_status", self.post_status, POST_STATUSES)
        _choices("request_id_in", self.request_id_in, REQUEST_ID_PLACES)
        _choices("throttle_style", self.throttle_style, THROTTLE_STYLES)
        _choices("limit_shape", self.limit_shape, LIMIT_SHAPES)
        if self.account_id < 0:
            raise ValueError("account_id must be >= 0")
        if self.retry_after_http_date and self.throttle_style not in ("429", "429-date"):
            raise ValueError(
                "retry_after_http_date is an alias of throttle_style='429-date'; "
                f"it cannot be combined with throttle_style={self.throttle_style!r}"
            )

    def _check_hostile_timings(self) -> None:
        """The trickle behaviour's duration and how often a junk target answers junk."""
        if not (math.isfinite(self.trickle_seconds) and self.trickle_seconds > 0):
            raise ValueError("trickle_seconds must be a finite number > 0")
        if self.junk_times < JUNK_FOREVER:
            raise ValueError(
                f"junk_times: accepted: a count >= 0, or {JUNK_FOREVER} for junk forever"
            )

    def _check_auth_faults(self) -> None:
        """The authenticate blips: rate, kinds and the forced first ones."""
        if not 0.0 <= self.auth_fault_rate <= 1.0:
            raise ValueError("auth_fault_rate is a probability: 0..1")
        unknown = [k for k in self.auth_fault_kinds if k not in AUTH_FAULT_KINDS]
        if unknown or not self.auth_fault_kinds:
            raise ValueError(
                f"auth_fault_kinds: accepted: a non-empty subset of "
                f"{', '.join(AUTH_FAULT_KINDS)}; got {list(self.auth_fault_kinds)}"
            )
        if self.auth_faults_first < 0:
            raise ValueError("auth_faults_first must be >= 0")

    def _check_outages(self) -> None:
        """How often random outages come ('auto', None or seconds) and how long they last."""
        every = self.outage_every
        if isinstance(every, str):
            if every != "auto":
                raise ValueError(
                    f"outage_every: accepted: seconds > 0, None (never) or 'auto'; got {every!r}"
                )
        elif every is not None and not (math.isfinite(every) and every > 0):
            raise ValueError(
                f"outage_every: accepted: seconds > 0, None (never) or 'auto'; got {every!r}"
            )
        if not (math.isfinite(self.outage_seconds) and self.outage_seconds > 0):
            raise ValueError("outage_seconds must be a finite number > 0")

    def _check_mixed(self) -> None:
        """The mixed wire's excluded groups and overridden rates."""
        bad = sorted(g for g in self.mixed_exclude if g not in MIXED_GROUPS)
        if bad:
            raise ValueError(f"mixed_exclude: accepted: {', '.join(MIXED_GROUPS)}; got {bad}")
        bad = sorted(k for k in self.mixed_rates if k not in MIXED_RATES)
        if bad:
            raise ValueError(f"mixed_rates: accepted keys: {', '.join(MIXED_RATES)}; got {bad}")
        if not all(0.0 <= v <= 1.0 for v in self.mixed_rates.values()):
            raise ValueError("mixed_rates: every rate is a probability: 0..1")

    def mixed_rate(self, name: str) -> float:
        """One of the mixed wire's probabilities (MIXED_RATES, unless overridden)."""
        return self.mixed_rates.get(name, MIXED_RATES[name])

    @property
    def mixed(self) -> bool:
        """True when every response picks its variant at random (wire="mixed")."""
        return self.wire == "mixed"

    @property
    def throttle(self) -> str:
        """The fixed throttle style (the old retry_after_http_date flag means '429-date')."""
        return "429-date" if self.retry_after_http_date else self.throttle_style

    def outage_interval(self) -> float | None:
        """Mean seconds between random outages; None when there are none.

        'auto' means none in the classic wire and every ~30 s (20-40 s) in the mixed one.
        """
        if self.outage_every == "auto":
            return 30.0 if self.mixed and "outage" not in self.mixed_exclude else None
        return self.outage_every

    @property
    def delay(self) -> DelayDistribution:
        """The preparation delay as a distribution, whatever form it was given in."""
        if isinstance(self.prepare_delay, str):
            return parse_delay(self.prepare_delay)
        return self.prepare_delay

    def size_for(self, target_id: str) -> int:
        """Export size (bytes, before clamping to the minimum) for one target."""
        return self.export_sizes.get(target_id, self.export_size)
