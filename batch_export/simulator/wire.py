"""Which documented or field-observed variant of an answer the simulator plays.

The platform's answers differ between documentation pages, API versions and
proxies (see /work/shared/copernica-datarequest-api.md, "Responses" and
"Observed in the field"). Each knob of `SimulatorConfig` pins one variant; in
the "mixed" wire every response draws its variant from a seeded RNG instead.
Every variant played is counted in ``stats.wire`` (``GET /_sim/stats``), so a
test can check that a run really met each of them.

The mixed wire stays survivable for a correct client: every variant is one
the API notes allow, and the disruptive ones (empty replies, auth blips,
spontaneous overload, transient junk, outages) are rare and short.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .config import (
    JUNK_BEHAVIOURS,
    LIMIT_SHAPES,
    MIXED_GROUPS,
    MIXED_RATES,
    PLACEHOLDER_WORDINGS,
    POST_STATUSES,
    REQUEST_ID_PLACES,
    REQUEST_ID_STYLES,
    THROTTLE_STYLES,
    SimulatorConfig,
)

if TYPE_CHECKING:
    from .stats import Stats

__all__ = ["WIRE_VARIANTS", "Wire", "wording_variant"]

_WORDING_NAMES = {
    "Data not available (yet)": "wording-no-dot",
    "Data not available (yet).": "wording-dot",
    "no data available (yet).": "wording-v1",
}

WIRE_VARIANTS: tuple[str, ...] = (
    "placeholder-bare",
    "placeholder-info",
    *_WORDING_NAMES.values(),
    *(f"post-{s}" for s in POST_STATUSES),
    *(f"rid-{p}" for p in REQUEST_ID_PLACES),
    *(f"rid-{s}" for s in REQUEST_ID_STYLES),
    *(f"throttle-{s}" for s in THROTTLE_STYLES),
    "auth-503",
    "auth-429",
    "auth-reset",
    "auth-slow",
    "auth-timeout",
    "empty-reply",
    *JUNK_BEHAVIOURS,
    "outage",
    "report-signed",
    "report-unsigned",
)


def wording_variant(wording: str) -> str:
    """The stats name of a placeholder wording."""
    return _WORDING_NAMES[wording]


class Wire:
    """Draws (mixed) or pins (classic) the variant of each answer, and counts it."""

    def __init__(self, config: SimulatorConfig, stats: Stats) -> None:
        self.config = config
        self.stats = stats
        self.mixed = config.mixed
        excluded = config.mixed_exclude if self.mixed else frozenset()
        self._on = {group: self.mixed and group not in excluded for group in MIXED_GROUPS}
        seed = config.seed
        self._rng = random.Random(f"wire:{seed}")
        self._rng_auth = random.Random(f"auth:{seed}")
        self._rng_outage = random.Random(f"outage:{seed}")
        self._rng_signature = random.Random(f"signature:{seed}")
        # its own stream: forgetting leaves every other variant's draws as they were
        self._rng_forget = random.Random(f"wire-forget:{seed}")
        self._rates = {name: config.mixed_rate(name) for name in MIXED_RATES}
        self._junked: set[str] = set()  # request IDs whose last GET was transient junk
        self._auth_ok = 0  # successful authenticate calls so far
        self._auth_forced = 0  # of the auth_faults_first blips, how many were played

    def _count(self, variant: str) -> None:
        self.stats.wire[variant] += 1

    # ------------------------------------------------------------------ creating

    def request_id_style(self) -> str:
        """'numeric' or 'opaque' for a new request ID."""
        if self._on["request-id"]:
            opaque = self._rng.random() < self._rates["opaque"]
            style = "opaque" if opaque else "numeric"
        else:
            style = self.config.request_id_style
        self._count(f"rid-{style}")
        return style

    def post_answer(self) -> tuple[int, str]:
        """(status, where the request ID goes) for a successful POST."""
        if self._on["post"]:
            status = POST_STATUSES[self._rng.randrange(len(POST_STATUSES))]
            place = REQUEST_ID_PLACES[self._rng.randrange(len(REQUEST_ID_PLACES))]
        else:
            status, place = self.config.post_status, self.config.request_id_in
        self._count(f"post-{status}")
        self._count(f"rid-{place}")
        return status, place

    def forgets(self) -> bool:
        """Mixed wire: will the platform lose this new data request before it is ready?

        Only when no ``forget_rate`` is configured (that one applies in either wire).
        """
        if not self._on["forget"] or self.config.forget_rate > 0:
            return False
        # counted in stats.forgotten (not in stats.wire: off by default, it is
        # no variant every mixed run meets)
        return self._rng_forget.random() < self._rates["forget"]

    # --------------------------------------------------------------- placeholders

    def placeholder(self, version: int) -> tuple[bool, str]:
        """(with an info member?, wording) of one not-ready answer."""
        if self._on["placeholder"]:
            with_info = self._rng.random() < 0.5
            wording = PLACEHOLDER_WORDINGS[self._rng.randrange(len(PLACEHOLDER_WORDINGS))]
        else:
            with_info = self.config.placeholder_info
            wording = self.config.placeholder_wording or (
                PLACEHOLDER_WORDINGS[2] if version == 1 else PLACEHOLDER_WORDINGS[0]
            )
        self._count("placeholder-info" if with_info else "placeholder-bare")
        self._count(wording_variant(wording))
        return with_info, wording

    # ----------------------------------------------------------------- throttling

    def limit_shape(self) -> str:
        """How the rate limit counts: drawn once per platform (mixed), or as configured.

        Not a per-response variant: the stats show it as ``limit_shape``.
        """
        if self._on["limit-shape"]:
            shape = random.Random(f"limit-shape:{self.config.seed}").choice(LIMIT_SHAPES)
        else:
            shape = self.config.limit_shape
        self.stats.limit_shape = shape
        return shape

    def throttle_style(self) -> str:
        """How this refusal looks (the rate limiter decided that there is one)."""
        if self._on["throttle"]:
            style = THROTTLE_STYLES[self._rng.randrange(len(THROTTLE_STYLES))]
        else:
            style = self.config.throttle
        self._count(f"throttle-{style}")
        self.stats.throttled[style] += 1
        return style

    def overloaded(self) -> bool:
        """Mixed wire without a rate limiter: refuse this API call as overload?"""
        return self._on["throttle"] and self._rng.random() < self._rates["overload"]

    # ----------------------------------------------------------------------- auth

    def auth_fault(self) -> str | None:
        """The blip to play on this (valid) POST /authenticate, if any."""
        cfg = self.config
        kind: str | None = None
        kinds = cfg.auth_fault_kinds
        if self._auth_ok >= 1 and self._auth_forced < cfg.auth_faults_first:
            kind = kinds[self._auth_forced % len(kinds)]
            self._auth_forced += 1
        else:
            rate = cfg.auth_fault_rate
            if rate <= 0 and self._on["auth"]:
                rate = self._rates["auth"]
            if rate > 0 and self._rng_auth.random() < rate:
                kind = kinds[self._rng_auth.randrange(len(kinds))]
        if kind is not None:
            self._count(f"auth-{kind}")
            self.stats.auth_faults[kind] += 1
        return kind

    def auth_succeeded(self) -> None:
        """A JWT was handed out (the forced blips start after the first one)."""
        self._auth_ok += 1

    # ----------------------------------------------------------------- empty reply

    def empty_reply(self) -> bool:
        """Mixed wire: close this datarequest call with no reply at all?"""
        return self._on["empty"] and self._rng.random() < self._rates["empty"]

    # ------------------------------------------------------------------------ junk

    def transient_junk(self, rid: str) -> str | None:
        """Mixed wire: a junk 200 for this GET of a ready export (never twice in a row)."""
        if not self._on["junk"]:
            return None
        if rid in self._junked:
            self._junked.discard(rid)
            return None
        if self._rng.random() >= self._rates["junk"]:
            return None
        self._junked.add(rid)
        return JUNK_BEHAVIOURS[self._rng.randrange(len(JUNK_BEHAVIOURS))]

    # ------------------------------------------------------------------- signature

    def report_signed(self) -> bool:
        """Whether this report POST is signed (mixed: either, half the time each)."""
        if self._on["signature"]:
            signed = self._rng_signature.random() < 0.5
        else:
            signed = self.config.sign_reports
        self._count("report-signed" if signed else "report-unsigned")
        return signed

    # --------------------------------------------------------------------- outages

    def next_outage(self) -> tuple[float, float] | None:
        """(seconds from now, seconds long) of the next random outage; None for none.

        Classic: exactly `outage_every` apart and `outage_seconds` long. Mixed:
        jittered (interval x0.67..1.33, duration x0.5..1.5: 20-40 s apart, 1-3 s long
        with the defaults).
        """
        interval = self.config.outage_interval()
        if interval is None:
            return None
        length = self.config.outage_seconds
        if self.mixed:
            interval *= self._rng_outage.uniform(2 / 3, 4 / 3)
            length *= self._rng_outage.uniform(0.5, 1.5)
        return interval, length
