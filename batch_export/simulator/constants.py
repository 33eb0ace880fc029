"""The simulator's vocabulary: the accepted faults, behaviours and wire variants.

The names a config, the CLI, the wire and the counters all agree on (fault
kinds, hostile behaviours, the fixed wire variants' accepted values, the
mixed wire's groups and default rates), the default access token and the
demo database and collection every simulator lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

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
]

DEFAULT_TOKEN = "sim-0123456789abcdef0123456789abcdef"  # noqa: S105 - a public dummy
# What every simulator lists unless told otherwise (database ID -> profiles,
# collection ID -> subprofiles): the README's and docs/migration.md's
# `ids --database 42` / `ids --collection 7` then work as written, without an account.
DEFAULT_DATABASES: Mapping[str, int] = MappingProxyType({"42": 100})
DEFAULT_COLLECTIONS: Mapping[str, int] = MappingProxyType({"7": 40})
FAULT_KINDS: tuple[str, ...] = ("500", "503", "reset", "truncate", "slow", "stall", "empty")
# The default mix leaves out "empty" so seeded classic runs draw the faults they always drew.
DEFAULT_FAULT_KINDS: tuple[str, ...] = FAULT_KINDS[:-1]
JUNK_BEHAVIOURS: tuple[str, ...] = (
    "junk-html",
    "junk-empty",
    "junk-truncated",
    "junk-error",
    "junk-array",
)
JUNK_FOREVER = -1  # junk_times value: a junk target never gets its genuine export
BEHAVIOURS: frozenset[str] = frozenset(
    {
        "trickle",
        *JUNK_BEHAVIOURS,
        "wrong-id",
        "wrong-type",
        "no-info",
        "not-json",
        "placeholder-ready",
        "short-body",
        "no-request-id",
        "html-error",
        "huge-error",
        "bad-request",
    }
)


WIRES: tuple[str, ...] = ("classic", "mixed")
REQUEST_ID_STYLES: tuple[str, ...] = ("numeric", "opaque")
REQUEST_ID_PLACES: tuple[str, ...] = (
    "x-created",
    "x-location",
    "location",
    "json-body",
    "text-body",
)
POST_STATUSES: tuple[int, ...] = (201, 200)
PLACEHOLDER_WORDINGS: tuple[str, ...] = (
    "Data not available (yet)",
    "Data not available (yet).",
    "no data available (yet).",
)
#: how the rate limit counts (simulator/ratelimit.py)
LIMIT_SHAPES: tuple[str, ...] = ("bucket", "fixed-window", "sliding-window")
THROTTLE_STYLES: tuple[str, ...] = ("429", "429-date", "429-bare", "503-html", "504-html")
AUTH_FAULT_KINDS: tuple[str, ...] = ("503", "429", "reset", "slow", "timeout")
# "timeout" holds the call for --slow-seconds and then drops it: left out of the default mix.
DEFAULT_AUTH_FAULT_KINDS: tuple[str, ...] = ("503", "429", "reset", "slow")
# What wire="mixed" varies, by group; `mixed_exclude` switches groups off.
MIXED_GROUPS: tuple[str, ...] = (
    "placeholder",
    "post",
    "request-id",
    "throttle",
    "limit-shape",
    "auth",
    "empty",
    "junk",
    "outage",
    "signature",
    "forget",
)

# The mixed wire's probabilities of its rare variants; `mixed_rates` overrides them.
MIXED_RATES: Mapping[str, float] = {
    "empty": 0.01,  # a datarequest call gets no reply at all
    "auth": 0.03,  # a POST /authenticate blips (used when auth_fault_rate is 0)
    "overload": 0.02,  # an API call is refused as overload (only without a rate limiter)
    "junk": 0.02,  # a GET of a ready export gets a junk 200 (never twice in a row)
    "opaque": 0.25,  # a new request ID is an odd "dr_..." one rather than a number
    # A new data request is lost before it is ready (when forget_rate is 0). Off
    # unless asked for (--mixed-rate forget=0.01): a client that never asks
    # again, like the simulator's own mixed-wire tests, would wait forever.
    "forget": 0.0,
}
