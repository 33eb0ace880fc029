"""The embedded simulator, driven over real HTTP on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import json
import random
import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_export.platform.responses import is_overload
from batch_export.simulator import Simulator, SimulatorConfig, parse_delay, parse_size
from batch_export.simulator.config import (
    AUTH_FAULT_KINDS,
    FAULT_KINDS,
    JUNK_BEHAVIOURS,
    JUNK_FOREVER,
    MIXED_GROUPS,
    PLACEHOLDER_WORDINGS,
    REQUEST_ID_PLACES,
    THROTTLE_STYLES,
)
from batch_export.simulator.exports import ExportSpec, export_chunks, export_length
from batch_export.simulator.stats import Stats
from batch_export.simulator.wire import WIRE_VARIANTS, Wire
from tests.simulator_helpers import Api, request_id_from, request_id_of, running, wait_for

pytestmark = pytest.mark.timeout(60)

# ------------------------------------------------------------------------- config parsing


def test_parse_size_units() -> None:
    """Sizes accept plain bytes and decimal k/m/g units."""
    assert parse_size("512") == 512
    assert parse_size("20k") == 20_000
    assert parse_size("1m") == 1_000_000
    assert parse_size("1g") == 1_000_000_000
    assert parse_size("1.5M") == 1_500_000
    for bad in ("", "abc", "-1", "1t", "k"):
        with pytest.raises(ValueError, match="accepted"):
            parse_size(bad)


def test_parse_delay_specs() -> None:
    """Fixed, uniform and long-tail delay specs sample within their bounds; bad specs say why."""
    rng = random.Random(1)
    assert parse_delay("2").sample(rng) == 2.0
    assert parse_delay("0").sample(rng) == 0.0
    assert all(0.5 <= parse_delay("0.5:3").sample(rng) <= 3 for _ in range(200))
    tail = parse_delay("longtail:0.1:1:0.1:20")
    draws = [tail.sample(rng) for _ in range(2000)]
    assert all(0.1 <= d <= 20 for d in draws)
    assert 50 < sum(d > 1 for d in draws) < 400  # roughly the unlucky 10 %
    assert "LongTail" in repr(tail)
    for bad in ("x", "3:1", "1:2:3", "longtail:1:2:3", "longtail:0:1:2:20", "-1", "nan"):
        with pytest.raises(ValueError, match="delay spec"):
            parse_delay(bad)
    with pytest.raises(ValueError):
        SimulatorConfig(prepare_delay="soon")


def test_delays_are_deterministic_per_seed() -> None:
    """The same seed gives the same sequence of delays."""
    spec = parse_delay("longtail:0.1:1:0.2:10")
    a, b = random.Random("s"), random.Random("s")
    assert [spec.sample(a) for _ in range(50)] == [spec.sample(b) for _ in range(50)]


# ------------------------------------------------------------------------ export bodies


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=60_000),
    kind=st.sampled_from(["profile", "subprofile", "email"]),
    behaviour=st.sampled_from([None, "wrong-id", "wrong-type", "no-info"]),
)
def test_export_body_exact_size_and_valid_json(size: int, kind: str, behaviour: str | None) -> None:
    """Any size gives valid JSON of exactly that size (clamped up to the smallest document)."""
    target = "a@b.nl" if kind == "email" else "42"
    spec = ExportSpec(3, kind, target, size, behaviour=behaviour)
    body = b"".join(export_chunks(spec, chunk_size=4096))
    assert len(body) == export_length(spec) >= size
    if size >= 60:
        assert len(body) == size
    doc = json.loads(body)
    if behaviour is None:
        assert doc["info"] == {"type": kind, "id": target if kind == "email" else 42}
        assert isinstance(doc["data"], list)


def test_export_streams_fast_without_building_the_body() -> None:
    """A 300 MB body comes out in bounded chunks at well over 200 MB/s."""
    spec = ExportSpec(0, "profile", "9", 300_000_000)
    start, total, biggest = time.perf_counter(), 0, 0
    for chunk in export_chunks(spec):
        total += len(chunk)
        biggest = max(biggest, len(chunk))
    elapsed = time.perf_counter() - start
    assert total == 300_000_000
    assert biggest < 2_000_000
    assert total / elapsed > 200e6, f"{total / elapsed / 1e6:.0f} MB/s"


# ------------------------------------------------------------------------------- creating


@pytest.mark.parametrize("version", [1, 2, 3, 4])
async def test_post_answers_201_with_headers_and_empty_body(version: int) -> None:
    """POST datarequest: 201, empty body, X-Created (digits, as the vendor's client reads) and X-location."""
    async with running(version) as api:
        resp = await api.post("profile", "123")
        assert resp.status == 201
        assert await resp.read() == b""
        rid = resp.headers["X-Created"]
        assert re.fullmatch(r"[1-9][0-9]{6,9}", rid), rid
        vendor = re.search(r"X-Created:\s?(\d+)", f"X-Created: {rid}\r\n")  # the PHP class
        assert vendor is not None and vendor[1] == rid
        assert resp.headers["X-location"] == f"{api.sim.base_url}/v{version}/datarequest/{rid}"
        sub = await api.post("subprofile", "77")
        assert sub.status == 201
        email = await api.post("email", "jan.de+test@example.nl")
        assert email.status == 201
        assert api.sim.stats()["posts_per_target"] == {
            "profile:123": 1,
            "subprofile:77": 1,
            "email:jan.de+test@example.nl": 1,
        }


async def test_post_validation_errors() -> None:
    """Non-numeric IDs and malformed addresses give 400, missing IDs 404, all as error JSON."""
    async with running(missing_ids=frozenset({"5"})) as api:
        for kind, target, status in [
            ("profile", "abc", 400),
            ("subprofile", "1.5", 400),
            ("email", "not-an-address", 400),
            ("profile", "5", 404),
            ("subprofile", "5", 404),
        ]:
            resp = await api.post(kind, target)
            assert resp.status == status, (kind, target)
            body = await resp.json()
            assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        assert api.sim.stats()["created"] == 0


async def test_report_parameter_in_query_json_and_form() -> None:
    """`report` is accepted from the query, a JSON body and a form body; emails are recorded."""
    async with running() as api:
        assert (await api.post("profile", "1", params={"report": "a@example.nl"})).status == 201
        assert (await api.post("profile", "2", json={"report": "b@example.nl"})).status == 201
        assert (await api.post("profile", "3", data={"report": "c@example.nl"})).status == 201
        assert (await api.post("profile", "4", params={"report": "nonsense"})).status == 400
        far = await api.post("profile", "5", params={"report": "https://example.com/hook"})
        assert far.status == 201
        stats = api.sim.stats()
        assert stats["reports"] == {
            "email": ["a@example.nl", "b@example.nl", "c@example.nl"],
            "url": 1,
        }
        assert stats["webhooks"]["refused"] == 1


# ------------------------------------------------------------------------------ lifecycle


@pytest.mark.parametrize("version", [1, 2, 3, 4])
async def test_lifecycle_placeholder_ready_expired(version: int) -> None:
    """Pending: placeholder, /data 404, growing /status; ready: export; expired: 404 + not available."""
    async with running(version, prepare_delay="0.8", expire_after=0.5, export_size=5_000) as api:
        rid = await api.create()
        wording = "no data available (yet)." if version == 1 else "Data not available (yet)"
        pending = await api.get(f"datarequest/{rid}")
        assert pending.status == 200
        assert await pending.json() == {"data": wording}
        early = await api.get(f"datarequest/{rid}/data")
        assert early.status == 404
        assert "error" in await early.json()
        first = await api.status(rid)
        assert first["status"] == "pending"
        assert 0 <= first["available"] < 5_000

        async def grew() -> bool:
            now = await api.status(rid)
            return bool(now["status"] == "pending" and now["available"] > first["available"])

        await wait_for(grew)

        async def ready() -> bool:
            return bool((await api.status(rid))["status"] == "available")

        await wait_for(ready)
        assert await api.status(rid) == {
            "status": "available",
            "available": 5_000,
            "content-type": "application/json",
        }
        for path in (f"datarequest/{rid}", f"datarequest/{rid}/data"):
            resp = await api.get(path)
            assert resp.status == 200
            assert resp.content_type == "application/json"
            assert resp.content_length == 5_000
            assert json.loads(await resp.read())["info"] == {"type": "profile", "id": 123}

        async def expired() -> bool:
            return bool((await api.status(rid))["status"] == "not available")

        await wait_for(expired)
        assert await api.status(rid) == {"status": "not available"}
        for path in (f"datarequest/{rid}", f"datarequest/{rid}/data"):
            gone = await api.get(path)
            assert gone.status == 404
            assert "error" in await gone.json()
        assert api.sim.stats()["expired_seen"] >= 3


async def test_unknown_request_id_is_not_available() -> None:
    """An unknown request ID: /status 'not available', the GETs 404 with error JSON."""
    async with running() as api:
        assert await api.status("dr_nosuchthing") == {"status": "not available"}
        for path in ("datarequest/dr_nosuchthing", "datarequest/dr_nosuchthing/data"):
            resp = await api.get(path)
            assert resp.status == 404
            assert "message" in (await resp.json())["error"]


async def test_export_is_deterministic_and_matches_admin_sha() -> None:
    """Two requests for one target serve identical bytes, matching /_sim/datarequest's sha256."""
    async with running(export_size=300_000, export_sizes={"8": 777}) as api:
        digests = []
        for _ in range(2):
            rid = await api.create("profile", "123")
            resp = await api.get(f"datarequest/{rid}/data")
            body = await resp.read()
            assert len(body) == 300_000
            assert json.loads(body)["info"] == {"type": "profile", "id": 123}
            digests.append(hashlib.sha256(body).hexdigest())
            async with api.session.get(f"{api.sim.base_url}/_sim/datarequest/{rid}") as admin:
                info = await admin.json()
            assert info == {
                "rid": rid,
                "kind": "profile",
                "id": 123,
                "size": 300_000,
                "sha256": digests[-1],
                "ready": True,
                "expired": False,
            }
        assert digests[0] == digests[1]
        small = await api.create("profile", "8")
        assert len(await (await api.get(f"datarequest/{small}")).read()) == 777
        email = await api.create("email", "x@y.nl")
        doc = await (await api.get(f"datarequest/{email}")).json()
        assert doc["info"] == {"type": "email", "id": "x@y.nl"}
    async with running(export_size=300_000) as again:
        rid = await again.create("profile", "123")
        body = await (await again.get(f"datarequest/{rid}")).read()
        assert hashlib.sha256(body).hexdigest() == digests[0]


async def test_id_as_string() -> None:
    """With id_as_string the export's info.id is a JSON string."""
    async with running(id_as_string=True) as api:
        rid = await api.create("subprofile", "55")
        doc = await (await api.get(f"datarequest/{rid}")).json()
        assert doc["info"] == {"type": "subprofile", "id": "55"}


# ----------------------------------------------------------------------------------- auth


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_query_token_auth_failures(version: int) -> None:
    """v1-v3: a missing or wrong access_token gives 401 with error JSON."""
    async with running(version) as api:
        url = api.url("profile/1/datarequest")
        for params in ({}, {"access_token": "wrong"}):
            async with api.session.post(url, params=params) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"]["message"]
        # a bearer header is not how v1-v3 authenticate
        jwt = await api.jwt()
        async with api.session.post(url, headers={"Authorization": f"Bearer {jwt}"}) as resp:
            assert resp.status == 401
        assert api.sim.stats()["created"] == 0


async def test_v4_jwt_auth_failures() -> None:
    """v4: no header, a garbage JWT, a forged signature or a query token all give 401 JSON."""
    async with running(4) as api:
        url = api.url("profile/1/datarequest")
        good = await api.jwt()
        header, payload, _ = good.split(".")
        forged = f"{header}.{payload}.{'A' * 43}"
        cases = [
            {},
            {"Authorization": "Bearer not.a.jwt"},
            {"Authorization": f"Bearer {forged}"},
            {"Authorization": good},
        ]
        for headers in cases:
            async with api.session.post(url, headers=headers) as resp:
                assert resp.status == 401, headers
                assert (await resp.json())["error"]["message"]
        async with api.session.post(url, params={"access_token": api.sim.token}) as resp:
            assert resp.status == 401
        async with api.session.post(api.sim.auth_url, data={"access_token": "wrong"}) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["message"]
        async with api.session.post(api.sim.auth_url, data={}) as resp:
            assert resp.status == 401
        stats = api.sim.stats()
        assert stats["created"] == 0
        assert stats["requests"]["POST authenticate"] == 3


async def test_jwt_claims_and_expiry() -> None:
    """The JWT is three base64url parts with sub/iat/exp; it works until exp, then 401."""
    async with running(4, jwt_lifetime=0.6) as api:
        before = time.time()
        jwt = await api.jwt()
        async with api.session.post(api.sim.auth_url, data={"access_token": api.sim.token}) as r:
            assert r.content_type == "text/plain"
        parts = jwt.split(".")
        assert len(parts) == 3
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=="))
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        assert header["alg"] == "HS256"
        assert before + 0.5 <= claims["exp"] <= time.time() + 0.7
        assert api.sim.token not in json.dumps(claims)
        assert (await api.post("profile", "1")).status == 201

        async def rejected() -> bool:
            return (await api.post("profile", "1")).status == 401

        await wait_for(rejected)
        api._jwt = None  # a fresh JWT works again
        assert (await api.post("profile", "1")).status == 201


# ----------------------------------------------------------------------------- rate limit


async def test_rate_limit_429_with_retry_after_seconds() -> None:
    """Beyond the burst, 429 with error JSON and an integer Retry-After >= 1."""
    async with running(rate_limit=0.5, burst=3) as api:
        statuses = [(await api.post("profile", str(i))) for i in range(5)]
        assert [r.status for r in statuses] == [201, 201, 201, 429, 429]
        limited = statuses[3]
        assert limited.headers["Retry-After"] == "2"
        assert "error" in json.loads(await limited.read())
        # /_sim is never limited and the stats show the 429s
        stats = api.sim.stats()
        assert stats["responses_429"] == 2
        assert stats["posts_per_target"].get("profile:3") is None  # never reached the handler


async def test_rate_limit_retry_after_http_date() -> None:
    """With retry_after_http_date the 429's Retry-After is an HTTP date in the near future."""
    async with running(rate_limit=0.2, burst=1, retry_after_http_date=True) as api:
        assert (await api.post("profile", "1")).status == 201
        limited = await api.post("profile", "2")
        assert limited.status == 429
        when = parsedate_to_datetime(limited.headers["Retry-After"])
        assert limited.headers["Retry-After"].endswith("GMT")
        delta = (when - datetime.now(timezone.utc)).total_seconds()
        assert 3 <= delta <= 8


async def test_rate_limit_is_per_token_and_covers_authenticate() -> None:
    """The bucket is per account: v4 JWT calls and /authenticate share the token's bucket."""
    async with running(4, rate_limit=0.1, burst=2) as api:
        await api.jwt()  # takes one token
        assert (await api.post("profile", "1")).status == 201
        assert (await api.post("profile", "2")).status == 429
        # a wrong token has its own (full) bucket: it is refused for auth, not for rate
        async with api.session.post(api.sim.auth_url, data={"access_token": "other"}) as resp:
            assert resp.status == 401


# --------------------------------------------------------------------------------- faults


def _ready_request(api: Api, target: str = "123") -> str:
    """Create a ready data request directly in the state (faults would hit a POST)."""
    rid, _ = api.sim.state.create("profile", target)
    return rid


@pytest.mark.parametrize("kind", ["500", "503"])
async def test_fault_5xx_has_no_side_effect(kind: str) -> None:
    """5xx faults answer error JSON, and a faulted POST creates nothing (but is counted)."""
    async with running(fault_rate=1.0, fault_kinds=(kind,)) as api:
        resp = await api.post("profile", "9")
        assert resp.status == int(kind)
        assert "error" in await resp.json()
        rid = _ready_request(api)
        assert (await api.get(f"datarequest/{rid}")).status == int(kind)
        assert (await api.get(f"datarequest/{rid}/status")).status == int(kind)
        stats = api.sim.stats()
        assert stats["created"] == 1  # only the one made directly
        assert stats["posts_per_target"] == {"profile:9": 1}
        assert stats["faults"][kind] == 3


async def test_fault_reset_post_creates_then_drops() -> None:
    """A 'reset' POST creates the request and drops the connection unanswered (ambiguous POST)."""
    async with running(fault_rate=1.0, fault_kinds=("reset",)) as api:
        with pytest.raises(aiohttp.ClientError):
            await api.post("profile", "9")
        stats = api.sim.stats()
        assert stats["created"] == 1
        assert stats["created_per_target"] == {"profile:9": 1}
        assert stats["responses"].get("0") == 1
        rid = _ready_request(api)
        with pytest.raises(aiohttp.ClientError):
            await api.get(f"datarequest/{rid}/status")


@pytest.mark.parametrize("kind", ["reset", "truncate"])
async def test_fault_cuts_export_mid_body(kind: str) -> None:
    """'reset' and 'truncate' send headers and part of the export, then the client's read fails."""
    async with running(fault_rate=1.0, fault_kinds=(kind,), export_size=2_000_000) as api:
        rid = _ready_request(api)
        params, headers = await api.auth()
        async with api.session.get(
            api.url(f"datarequest/{rid}/data"), params=params, headers=headers
        ) as resp:
            assert resp.status == 200
            assert resp.content_length == 2_000_000
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        stats = api.sim.stats()
        assert 0 < stats["bytes_served"] < 2_000_000
        assert stats["exports_served"] == 0


async def test_fault_slow_stalls_then_answers() -> None:
    """A 'slow' fault delays the answer by slow_seconds and then answers normally."""
    async with running(fault_rate=1.0, fault_kinds=("slow",), slow_seconds=0.4) as api:
        start = time.monotonic()
        resp = await api.post("profile", "1")
        assert resp.status == 201
        assert time.monotonic() - start >= 0.4
        assert api.sim.stats()["faults"]["slow"] == 1


async def test_fault_rate_is_split_and_seeded() -> None:
    """With fault_rate 0.5 about half the calls fault, the same ones for the same seed."""

    async def pattern() -> list[int]:
        async with running(fault_rate=0.5, fault_kinds=("500", "503"), seed=4) as api:
            return [(await api.post("profile", str(i))).status for i in range(60)]

    first = await pattern()
    assert first == await pattern()
    assert 15 < sum(s != 201 for s in first) < 45
    assert {500, 503} <= set(first)


# ---------------------------------------------------------------------------- behaviours

BEHAVIOURS = {
    "1": "wrong-id",
    "2": "wrong-type",
    "3": "no-info",
    "4": "not-json",
    "5": "placeholder-ready",
    "6": "short-body",
    "7": "no-request-id",
    "8": "html-error",
    "9": "huge-error",
    "10": "bad-request",
}


async def _export(api: Api, target: str) -> bytes:
    rid = await api.create("profile", target)
    resp = await api.get(f"datarequest/{rid}/data")
    assert resp.status == 200
    return await resp.read()


async def test_hostile_export_bodies() -> None:
    """wrong-id, wrong-type, no-info and not-json serve the promised broken exports."""
    async with running(behaviours=BEHAVIOURS, export_size=3_000) as api:
        assert json.loads(await _export(api, "1"))["info"] == {"type": "profile", "id": 2}
        assert json.loads(await _export(api, "2"))["info"] == {"type": "subprofile", "id": 2}
        no_info = json.loads(await _export(api, "3"))
        assert "info" not in no_info and "data" not in no_info
        not_json = await _export(api, "4")
        assert len(not_json) == 3_000
        with pytest.raises(ValueError):
            json.loads(not_json)


async def test_hostile_placeholder_forever_and_short_body() -> None:
    """placeholder-ready answers the placeholder when ready; short-body stops before Content-Length."""
    async with running(behaviours=BEHAVIOURS) as api:
        rid = await api.create("profile", "5")
        assert (await api.status(rid))["status"] == "available"
        for path in (f"datarequest/{rid}", f"datarequest/{rid}/data"):
            resp = await api.get(path)
            assert resp.status == 200
            assert await resp.json() == {"data": "Data not available (yet)"}
        rid = await api.create("profile", "6")
        params, headers = await api.auth()
        async with api.session.get(
            api.url(f"datarequest/{rid}"), params=params, headers=headers
        ) as r:
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()


async def test_hostile_post_answers() -> None:
    """no-request-id, html-error, huge-error and bad-request answer the POST as promised."""
    async with running(behaviours=BEHAVIOURS) as api:
        bare = await api.post("profile", "7")
        assert bare.status == 201
        assert "X-Created" not in bare.headers and "X-location" not in bare.headers
        assert await bare.read() == b""
        for _ in range(2):
            html = await api.post("profile", "8")
            assert html.status == 500
            assert html.content_type == "text/html"
            assert (await html.text()).startswith("<html>")
        huge = await api.post("profile", "9")
        assert huge.status == 400
        assert len(await huge.read()) > 5_000_000
        bad = await api.post("profile", "10")
        assert bad.status == 400
        assert await bad.json() == {"error": {"message": "Invalid profile"}}
        assert api.sim.stats()["created"] == 0


# ------------------------------------------------------------------------------ redirects


async def test_redirect_to_other_host_without_following() -> None:
    """Every /v{N}/ call answers 301 to redirect_to + path + query; the other host sees nothing."""
    async with Simulator(SimulatorConfig()) as other:
        async with running(redirect_to=other.base_url) as api:
            resp = await api.post("profile", "12", params={"x": "1"})
            assert resp.status == 301
            location = resp.headers["Location"]
            assert location.startswith(f"{other.base_url}/v2/profile/12/datarequest?")
            assert "access_token=" in location and "x=1" in location
            assert (await api.get("datarequest/abc/status")).status == 301
            assert api.sim.stats()["credentials_received"] == 2
        assert other.stats()["credentials_received"] == 0
        assert other.stats()["requests_total"] == 0


# ------------------------------------------------------------------------------- webhooks


async def test_report_webhook_delivers_export_to_loopback() -> None:
    """A loopback `report` URL receives the finished export by POST with X-Datarequest-Id."""
    received: dict[str, object] = {}
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received["rid"] = request.headers.get("X-Datarequest-Id")
        received["type"] = request.content_type
        received["body"] = await request.read()
        arrived.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with running(prepare_delay="0.2", export_size=50_000) as api:
            resp = await api.post("profile", "31", json={"report": f"http://127.0.0.1:{port}/hook"})
            rid = resp.headers["X-Created"]
            await asyncio.wait_for(arrived.wait(), 10)
            body = received["body"]
            assert isinstance(body, bytes) and len(body) == 50_000
            assert received["rid"] == rid
            assert received["type"] == "application/json"
            async with api.session.get(f"{api.sim.base_url}/_sim/datarequest/{rid}") as admin:
                assert (await admin.json())["sha256"] == hashlib.sha256(body).hexdigest()

            async def counted() -> bool:
                return bool(api.sim.stats()["webhooks"]["sent"] == 1)

            await wait_for(counted)
    finally:
        await runner.cleanup()


# -------------------------------------------------------------------------------- listing


async def test_profileids_paging_and_limits() -> None:
    """Paged profile IDs: ascending, default 100, a short last page, limit > 1000 is 400."""
    async with running(databases={"7": 250}) as api:
        pages = []
        for start in (0, 100, 200):
            resp = await api.get("database/7/profileids", params={"start": start, "limit": 100})
            pages.append(await resp.json())
        assert [len(p) for p in pages] == [100, 100, 50]
        ids = [i for page in pages for i in page]
        assert ids == sorted(set(ids)) and all(isinstance(i, int) for i in ids)
        default = await (await api.get("database/7/profileids")).json()
        assert default == pages[0]
        assert await (await api.get("database/7/profileids", params={"start": 300})).json() == []
        too_big = await api.get("database/7/profileids", params={"limit": 1001})
        assert too_big.status == 400
        assert "error" in await too_big.json()
        assert (await api.get("database/7/profileids", params={"start": "x"})).status == 400
        assert (await api.get("database/99/profileids")).status == 404
        assert api.sim.stats()["requests"]["GET profileids"] == 8


async def test_wrapped_id_lists_and_subprofileids() -> None:
    """wrap_id_lists wraps pages (total omitted with total=false); subprofile IDs are unpaged."""
    async with running(databases={"1": 5}, collections={"3": 1500}, wrap_id_lists=True) as api:
        page = await (await api.get("database/1/profileids", params={"limit": 2})).json()
        assert page["start"] == 0 and page["limit"] == 2 and page["count"] == 2
        assert page["total"] == 5 and len(page["data"]) == 2
        quick = await (
            await api.get("database/1/profileids", params={"start": 4, "total": "false"})
        ).json()
        assert "total" not in quick and quick["count"] == 1
        subs = await (await api.get("collection/3/subprofileids")).json()
        assert len(subs) == 1500 and subs == sorted(subs)
        assert (await api.get("collection/4/subprofileids")).status == 404


# ---------------------------------------------------------------------------------- admin


async def test_stats_log_and_reset() -> None:
    """/_sim/stats counts per endpoint and status, /_sim/log lists calls, reset-stats zeroes."""
    async with running(4, prepare_delay="0") as api:
        rid = await api.create()
        await api.get(f"datarequest/{rid}")
        await api.get(f"datarequest/{rid}/status")
        await api.get(f"datarequest/{rid}/data")
        base = api.sim.base_url
        async with api.session.get(f"{base}/_sim/stats") as resp:
            stats = await resp.json()
        assert stats == api.sim.stats()
        assert stats["requests"] == {
            "POST datarequest": 1,
            "GET datarequest": 1,
            "GET status": 1,
            "GET data": 1,
            "POST authenticate": 1,
            "GET profileids": 0,
            "GET subprofileids": 0,
        }
        assert stats["requests_total"] == 5
        assert stats["responses"] == {"200": 4, "201": 1}
        assert stats["exports_served"] == 2
        assert stats["bytes_served"] == 4_000
        assert stats["credentials_received"] == 4  # the bearer calls, not the form body
        async with api.session.get(f"{base}/_sim/log") as resp:
            log = await resp.json()
        assert [entry[1:] for entry in log] == [
            ["POST", "POST authenticate", 200],
            ["POST", "POST datarequest", 201],
            ["GET", "GET datarequest", 200],
            ["GET", "GET status", 200],
            ["GET", "GET data", 200],
        ]
        assert all(isinstance(e[0], float) for e in log)
        assert [e[0] for e in log] == sorted(e[0] for e in log)
        async with api.session.post(f"{base}/_sim/reset-stats") as resp:
            assert resp.status == 200
        assert api.sim.stats()["requests_total"] == 0
        assert api.sim.stats()["responses"] == {}
        async with api.session.get(f"{base}/_sim/datarequest/nope") as resp:
            assert resp.status == 404


# ----------------------------------------------------------------------- wire: config


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("wire", "fancy", "'classic', 'mixed'"),
        ("request_id_style", "uuid", "'numeric', 'opaque'"),
        (
            "placeholder_wording",
            "Not yet",
            "'Data not available (yet)', 'Data not available (yet).'",
        ),
        ("post_status", 202, "201, 200"),
        (
            "request_id_in",
            "cookie",
            "'x-created', 'x-location', 'location', 'json-body', 'text-body'",
        ),
        ("throttle_style", "418", "'429', '429-date', '429-bare', '503-html', '504-html'"),
        ("trickle_seconds", 0, "trickle_seconds must be"),
        ("junk_times", -2, f"or {JUNK_FOREVER} for junk forever"),
        ("auth_fault_rate", 1.5, "probability"),
        ("auth_fault_kinds", ("500",), "503, 429, reset, slow, timeout"),
        ("auth_fault_kinds", (), "503, 429, reset, slow, timeout"),
        ("auth_faults_first", -1, "auth_faults_first must be >= 0"),
        ("outage_every", 0, "seconds > 0, None (never) or 'auto'"),
        ("outage_every", "soon", "seconds > 0, None (never) or 'auto'"),
        ("outage_seconds", -1, "outage_seconds must be"),
        ("mixed_exclude", frozenset({"faults"}), ", ".join(MIXED_GROUPS)),
        ("mixed_rates", {"chaos": 0.1}, "empty, auth, overload, junk, opaque"),
        ("mixed_rates", {"junk": 2.0}, "probability"),
        ("fault_kinds", ("boom",), "stall, empty"),
    ],
)
def test_config_rejects_bad_wire_values(name: str, value: Any, needle: str) -> None:
    """Each wire knob rejects a bad value with a message naming what it accepts."""
    with pytest.raises(ValueError, match=re.escape(needle)):
        SimulatorConfig(**{name: value})


def test_classic_defaults_and_aliases() -> None:
    """The defaults are the classic answers; retry_after_http_date is an alias of '429-date'."""
    cfg = SimulatorConfig()
    assert (cfg.wire, cfg.request_id_style, cfg.post_status, cfg.request_id_in) == (
        "classic",
        "numeric",
        201,
        "x-created",
    )
    assert (cfg.placeholder_info, cfg.placeholder_wording, cfg.throttle) == (False, None, "429")
    assert "empty" in FAULT_KINDS and "empty" not in cfg.fault_kinds  # old seeded mixes stay
    assert cfg.outage_interval() is None
    assert SimulatorConfig(outage_every=5).outage_interval() == 5
    assert SimulatorConfig(wire="mixed").outage_interval() == 30.0
    assert SimulatorConfig(wire="mixed", outage_every=None).outage_interval() is None
    assert (
        SimulatorConfig(wire="mixed", mixed_exclude=frozenset({"outage"})).outage_interval() is None
    )
    assert SimulatorConfig(retry_after_http_date=True).throttle == "429-date"
    assert (
        SimulatorConfig(retry_after_http_date=True, throttle_style="429-date").throttle
        == "429-date"
    )
    with pytest.raises(ValueError, match="alias of throttle_style='429-date'"):
        SimulatorConfig(retry_after_http_date=True, throttle_style="503-html")


def test_outage_plans_classic_exact_mixed_jittered() -> None:
    """Classic outages come exactly every outage_every for outage_seconds; mixed ones 20-40 s apart, 1-3 s long, seeded."""
    classic = Wire(SimulatorConfig(outage_every=5, outage_seconds=1.5), Stats())
    assert [classic.next_outage() for _ in range(3)] == [(5, 1.5)] * 3

    def plan(seed: int) -> list[tuple[float, float] | None]:
        wire = Wire(SimulatorConfig(wire="mixed", seed=seed), Stats())
        return [wire.next_outage() for _ in range(200)]

    first = plan(3)
    assert all(p is not None and 20 <= p[0] <= 40 and 1 <= p[1] <= 3 for p in first)
    assert first == plan(3) and first != plan(4)
    assert Wire(SimulatorConfig(), Stats()).next_outage() is None


# ------------------------------------------------------------------ wire: request IDs


async def test_numeric_request_ids_are_unique_and_seeded() -> None:
    """Numeric request IDs are distinct decimal strings, the same sequence for the same seed."""

    async def ids(seed: int) -> list[str]:
        async with running(seed=seed) as api:
            got = [await api.create("profile", str(i)) for i in range(40)]
            assert api.sim.stats()["wire"]["rid-numeric"] == 40
            return got

    first = await ids(1)
    assert all(re.fullmatch(r"[1-9][0-9]{6,9}", rid) for rid in first)
    assert len(set(first)) == 40
    assert await ids(1) == first
    assert await ids(2) != first


async def test_request_id_style_opaque() -> None:
    """request_id_style='opaque' issues 'dr_' + 20 base32 characters that work like numeric ones."""
    async with running(request_id_style="opaque") as api:
        rid = await api.create()
        assert re.fullmatch(r"dr_[a-z2-7]{20}", rid), rid
        assert (await api.status(rid))["status"] == "available"
        wire = api.sim.stats()["wire"]
        assert (wire["rid-opaque"], wire["rid-numeric"]) == (1, 0)


# ----------------------------------------------------------------- wire: placeholders


@pytest.mark.parametrize("version", [1, 2, 4])
async def test_placeholder_info_carries_the_target(version: int) -> None:
    """placeholder_info: the not-ready answer is {"info": {type, id}, "data": TEXT}; /data stays 404."""
    async with running(version, placeholder_info=True, prepare_delay="60") as api:
        rid = await api.create("profile", "123")
        wording = "no data available (yet)." if version == 1 else "Data not available (yet)"
        body = await (await api.get(f"datarequest/{rid}")).json()
        assert body == {"info": {"type": "profile", "id": 123}, "data": wording}
        email = await api.create("email", "a@b.nl")
        doc = await (await api.get(f"datarequest/{email}")).json()
        assert doc["info"] == {"type": "email", "id": "a@b.nl"}
        assert (await api.get(f"datarequest/{rid}/data")).status == 404
        wire = api.sim.stats()["wire"]
        assert (wire["placeholder-info"], wire["placeholder-bare"]) == (2, 0)


@pytest.mark.parametrize("wording", PLACEHOLDER_WORDINGS)
async def test_placeholder_wording_is_chosen(wording: str) -> None:
    """placeholder_wording sets the not-ready text in every version, with or without info."""
    for version in (1, 3):
        async with running(version, placeholder_wording=wording, prepare_delay="60") as api:
            rid = await api.create()
            assert await (await api.get(f"datarequest/{rid}")).json() == {"data": wording}
    async with running(
        placeholder_wording=wording, placeholder_info=True, prepare_delay="60"
    ) as api:
        rid = await api.create()
        assert (await (await api.get(f"datarequest/{rid}")).json())["data"] == wording
        assert (
            sum(api.sim.stats()["wire"][w] for w in ("wording-no-dot", "wording-dot", "wording-v1"))
            == 1
        )


# ------------------------------------------------------------------------ wire: POST


async def test_post_status_200() -> None:
    """post_status=200: a successful POST answers 200, still with X-Created and X-location."""
    async with running(post_status=200) as api:
        resp = await api.post("profile", "5")
        assert resp.status == 200
        assert "X-Created" in resp.headers and "X-location" in resp.headers
        wire = api.sim.stats()["wire"]
        assert (wire["post-200"], wire["post-201"]) == (1, 0)


_ID_HEADERS = {
    "x-created": {"X-Created", "X-location"},
    "x-location": {"X-location"},
    "location": {"Location"},
    "json-body": set(),
    "text-body": set(),
}


@pytest.mark.parametrize("style", ["numeric", "opaque"])
@pytest.mark.parametrize("place", REQUEST_ID_PLACES)
async def test_request_id_in_exactly_one_place(place: str, style: str) -> None:
    """request_id_in puts the new request ID only where it says; that ID then works for the GETs."""
    async with running(request_id_in=place, request_id_style=style) as api:
        resp = await api.post("profile", "77")
        assert resp.status == 201
        body = await resp.read()
        present = {h for h in ("X-Created", "X-location", "Location") if h in resp.headers}
        assert present == _ID_HEADERS[place]
        found, rid = await request_id_of(resp)
        assert found == place
        url = f"{api.sim.base_url}/v2/datarequest/{rid}"
        if place == "x-created":
            assert resp.headers["X-location"] == url and body == b""
        elif place in ("x-location", "location"):
            assert resp.headers[place.title()] == url and body == b""
        elif place == "json-body":
            assert resp.content_type == "application/json"
            assert json.loads(body) == {"id": int(rid) if style == "numeric" else rid}
        else:
            assert resp.content_type == "text/plain" and body == rid.encode()
        assert (await api.status(rid))["status"] == "available"
        assert api.sim.stats()["wire"][f"rid-{place}"] == 1


# ------------------------------------------------------------------- wire: throttling


@pytest.mark.parametrize("style", THROTTLE_STYLES)
async def test_throttle_style_shapes_the_refusal(style: str) -> None:
    """The limiter decides which calls are refused; throttle_style decides how each refusal looks."""
    async with running(rate_limit=0.5, burst=2, throttle_style=style) as api:
        answers = [await api.post("profile", str(i)) for i in range(4)]
        assert [r.status for r in answers[:2]] == [201, 201]
        for refused in answers[2:]:
            body = await refused.read()
            if style.endswith("-html"):
                assert refused.status == int(style[:3])
                assert refused.content_type == "text/html"
                assert b"<title>Loadbalancer Error</title>" in body
                assert b"too many requests to handle" in body
                assert "too many requests to handle" in refused.headers["X-Loadbalancer"]
                assert "Retry-After" not in refused.headers
                continue
            assert refused.status == 429
            assert "error" in json.loads(body)
            retry = refused.headers.get("Retry-After")
            if style == "429":
                assert retry is not None and retry.isdigit() and int(retry) >= 1
            elif style == "429-date":
                assert retry is not None and retry.endswith("GMT")
                assert parsedate_to_datetime(retry) > datetime.now(timezone.utc)
            else:
                assert retry is None
        stats = api.sim.stats()
        assert stats["throttled"] == {s: 2 if s == style else 0 for s in THROTTLE_STYLES}
        assert stats["wire"][f"throttle-{style}"] == 2
        assert stats["created"] == 2


# ------------------------------------------------------------- wire: trickle and junk


async def test_trickle_sends_headers_at_once_then_one_byte_at_a_time() -> None:
    """trickle: headers at once, then the export a byte per trickle_seconds; sock_read never fires, total does."""
    async with running(behaviours={"3": "trickle"}, trickle_seconds=0.02, export_size=60) as api:
        rid = await api.create("profile", "3")
        params, headers = await api.auth()
        url = api.url(f"datarequest/{rid}")
        start = time.monotonic()
        patient = aiohttp.ClientTimeout(sock_read=0.5)
        async with api.session.get(url, params=params, headers=headers, timeout=patient) as resp:
            assert resp.status == 200 and resp.content_length == 60
            assert time.monotonic() - start < 0.5  # the headers did not wait for the body
            body = await resp.read()
        assert time.monotonic() - start >= 59 * 0.02
        assert len(body) == 60 and json.loads(body)["info"] == {"type": "profile", "id": 3}
        hurried = aiohttp.ClientTimeout(total=0.3)
        with pytest.raises(TimeoutError):
            async with api.session.get(url, params=params, headers=headers, timeout=hurried) as r:
                await r.read()
        assert api.sim.stats()["trickles"] == 2


def _check_junk(kind: str, resp: aiohttp.ClientResponse, body: bytes, genuine: bytes) -> None:
    assert resp.status == 200
    assert resp.content_length == len(body)  # a complete HTTP answer, not a transport error
    if kind == "junk-html":
        assert resp.content_type == "text/html" and body.lstrip().startswith(b"<!DOCTYPE html>")
    elif kind == "junk-empty":
        assert body == b""
    elif kind == "junk-truncated":
        assert 0 < len(body) < len(genuine) and genuine.startswith(body)
        with pytest.raises(ValueError):
            json.loads(body)
    elif kind == "junk-error":
        assert json.loads(body)["error"]["message"]
    else:
        assert json.loads(body) == []


@pytest.mark.parametrize("kind", JUNK_BEHAVIOURS)
async def test_junk_answers_then_the_genuine_export(kind: str) -> None:
    """A junk-* target gets a junk 200 for its first junk_times GETs of a ready export, then the real one."""
    async with running(behaviours={"4": kind}, export_size=3_000, junk_times=2) as api:
        rid = await api.create("profile", "4")
        assert (await api.status(rid))["status"] == "available"
        junk = [await api.get(path) for path in (f"datarequest/{rid}", f"datarequest/{rid}/data")]
        genuine = await (await api.get(f"datarequest/{rid}")).read()
        doc = json.loads(genuine)
        assert len(genuine) == 3_000 and isinstance(doc["data"], list)
        assert doc["info"] == {"type": "profile", "id": 4}
        for resp in junk:
            _check_junk(kind, resp, await resp.read(), genuine)
        stats = api.sim.stats()
        assert stats["junk"][kind] == 2 and stats["wire"][kind] == 2
        assert stats["exports_served"] == 1


async def test_junk_forever_and_never() -> None:
    """junk_times=JUNK_FOREVER never serves the export; junk_times=0 serves it at once."""
    async with running(behaviours={"4": "junk-error"}, junk_times=JUNK_FOREVER) as api:
        rid = await api.create("profile", "4")
        for _ in range(6):
            assert "error" in await (await api.get(f"datarequest/{rid}")).json()
    async with running(behaviours={"4": "junk-error"}, junk_times=0) as api:
        rid = await api.create("profile", "4")
        assert isinstance((await (await api.get(f"datarequest/{rid}")).json())["data"], list)


# ------------------------------------------------------------------------ wire: auth


async def _authenticate(api: Api, token: str | None = None) -> tuple[object, str, float]:
    """(status or exception type, body, seconds) of one POST /authenticate."""
    start = time.monotonic()
    form = {"access_token": token or api.sim.token}
    try:
        async with api.session.post(
            api.sim.auth_url, data=form, timeout=aiohttp.ClientTimeout(total=10)
        ) as resp:
            outcome: object = resp.status
            body = await resp.text()
            if resp.status == 429:
                body = resp.headers["Retry-After"] + " " + body
    except aiohttp.ClientError as exc:
        outcome, body = type(exc), ""
    return outcome, body, time.monotonic() - start


async def test_auth_faults_first_blip_after_the_first_jwt() -> None:
    """auth_faults_first=2: the first authenticate works, the next two blip (kinds in turn), then JWTs again."""
    async with running(4, auth_faults_first=2, auth_fault_kinds=("503", "429")) as api:
        assert (await _authenticate(api, "wrong"))[0] == 401  # refused logins use up nothing
        first, jwt, _ = await _authenticate(api)
        assert first == 200 and jwt.count(".") == 2
        status, body, _ = await _authenticate(api)
        assert status == 503 and json.loads(body)["error"]["message"]
        status, body, _ = await _authenticate(api)
        assert status == 429 and body.startswith("1 ")
        status, jwt, _ = await _authenticate(api)
        assert status == 200 and jwt.count(".") == 2
        stats = api.sim.stats()
        assert stats["auth_faults"] == {"503": 1, "429": 1, "reset": 0, "slow": 0, "timeout": 0}
        assert (stats["wire"]["auth-503"], stats["wire"]["auth-429"]) == (1, 1)


@pytest.mark.parametrize("kind", AUTH_FAULT_KINDS)
async def test_auth_fault_kinds(kind: str) -> None:
    """auth_fault_rate=1 with one kind: every valid POST /authenticate plays exactly that blip."""
    async with running(4, auth_fault_rate=1.0, auth_fault_kinds=(kind,), slow_seconds=0.3) as api:
        outcome, body, seconds = await _authenticate(api)
        if kind == "503":
            assert outcome == 503 and "error" in json.loads(body)
        elif kind == "429":
            assert outcome == 429 and body.startswith("1 ")
        elif kind == "slow":
            assert outcome == 200 and body.count(".") == 2 and seconds >= 0.3
        else:  # reset at once; timeout after slow_seconds: no answer either way
            assert isinstance(outcome, type) and issubclass(outcome, aiohttp.ClientError)
            assert (seconds >= 0.3) == (kind == "timeout")
        assert (await _authenticate(api, "wrong"))[0] == 401
        stats = api.sim.stats()
        assert stats["auth_faults"][kind] == 1 and stats["wire"][f"auth-{kind}"] == 1


async def test_auth_fault_rate_is_seeded() -> None:
    """auth_fault_rate=0.3 blips about 30 % of authenticate calls, the same ones for the same seed."""

    async def pattern(seed: int) -> list[object]:
        async with running(
            4, auth_fault_rate=0.3, auth_fault_kinds=("503", "429"), seed=seed
        ) as api:
            return [(await _authenticate(api))[0] for _ in range(60)]

    first = await pattern(8)
    assert 8 < sum(s != 200 for s in first) < 30
    assert {200, 503, 429} == set(first)
    assert await pattern(8) == first
    assert await pattern(9) != first


# ------------------------------------------------------------------- wire: empty reply


async def test_empty_reply_sends_not_even_a_status_line() -> None:
    """The 'empty' fault closes the connection before one byte: a raw socket reads EOF; a POST is still created."""
    async with running(fault_rate=1.0, fault_kinds=("empty",)) as api:
        rid = _ready_request(api)
        reader, writer = await asyncio.open_connection("127.0.0.1", api.sim.port)
        request = f"GET /v2/datarequest/{rid}/data?access_token={api.sim.token} HTTP/1.1\r\n"
        writer.write(f"{request}Host: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.get(f"datarequest/{rid}")
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await api.post("profile", "9")
        stats = api.sim.stats()
        # aiohttp itself retries an idempotent GET once after a disconnect: 3 or 4 empties.
        empties = stats["faults"]["empty"]
        assert empties in (3, 4) and stats["wire"]["empty-reply"] == empties
        assert stats["responses"] == {"0": empties}
        assert stats["created_per_target"] == {"profile:123": 1, "profile:9": 1}  # ambiguous POST


# ----------------------------------------------------------------------- wire: outages


def _serving(sim: Simulator) -> bool:
    """``sim.serving`` read afresh (mypy would carry an assert's narrowing of it past an outage)."""
    return sim.serving


async def _refused(port: int) -> bool:
    """True if a new TCP connection to the port is refused (ECONNREFUSED)."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def test_outage_refuses_connections_then_serves_on_the_same_port() -> None:
    """Simulator.outage(S): new connections get ECONNREFUSED at once; after S seconds the same port serves."""
    async with running() as api:
        sim, port = api.sim, api.sim.port
        assert not await _refused(port) and _serving(sim)
        start = time.monotonic()
        await sim.outage(0.8)
        assert await _refused(port)
        assert not _serving(sim) and "outage" in repr(sim)
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await api.post("profile", "1")
        assert caught.value.os_error.errno == errno.ECONNREFUSED

        async def back() -> bool:
            return not await _refused(port)

        await wait_for(back)
        assert time.monotonic() - start >= 0.75
        assert _serving(sim) and sim.port == port
        assert (await api.post("profile", "1")).status == 201
        stats = sim.stats()
        assert stats["outages"] == 1 and stats["wire"]["outage"] == 1
        assert stats["outage_seconds"] == pytest.approx(0.8, abs=0.01)


async def test_outage_cuts_keep_alive_connections() -> None:
    """During an outage a keep-alive session fails every call (its pooled connection is cut) until the port serves."""
    async with running() as api:
        rid = await api.create()
        assert (await api.status(rid))["status"] == "available"  # the connection is kept alive
        await api.sim.outage(1.0)
        failures = []
        for _ in range(3):
            with pytest.raises(aiohttp.ClientConnectionError) as caught:
                await api.status(rid)
            failures.append(caught.value)
        assert any(
            isinstance(f, aiohttp.ClientConnectorError) and f.os_error.errno == errno.ECONNREFUSED
            for f in failures
        )
        await asyncio.wait_for(api.sim.until_serving(), 10)
        assert (await api.status(rid))["status"] == "available"


async def test_outage_cuts_a_download_in_flight() -> None:
    """An export streaming when the outage starts is cut off (a payload error), not finished."""
    async with running(behaviours={"3": "trickle"}, trickle_seconds=0.05, export_size=60) as api:
        rid = await api.create("profile", "3")
        params, headers = await api.auth()
        async with api.session.get(
            api.url(f"datarequest/{rid}"), params=params, headers=headers
        ) as r:
            assert r.status == 200
            await api.sim.outage(0.3)
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        await asyncio.wait_for(api.sim.until_serving(), 10)
        assert api.sim.stats()["exports_served"] == 0


async def test_outage_during_an_outage_extends_it_and_stop_ends_it() -> None:
    """A second outage extends the first instead of stacking; stop() works in the middle of one."""
    sim = Simulator(SimulatorConfig())
    await sim.start()
    await sim.outage(30)
    await sim.outage(1)  # within the 30 s: nothing to extend
    stats = sim.stats()
    assert stats["outages"] == 2
    assert stats["outage_seconds"] == pytest.approx(30, abs=0.01)
    assert not sim.serving
    start = time.monotonic()
    await asyncio.wait_for(sim.stop(), 10)
    assert time.monotonic() - start < 5
    assert repr(sim).startswith("Simulator(stopped")
    with pytest.raises(ValueError, match="> 0"):
        await Simulator().outage(0)


async def test_admin_outage_endpoint() -> None:
    """POST /_sim/outage?seconds=S answers first, then the port refuses, then serves; a bad S is a 400."""
    async with running() as api:
        base = api.sim.base_url
        for bad in ("", "0", "-1", "x", "inf", "5000"):
            async with api.session.post(f"{base}/_sim/outage", params={"seconds": bad}) as resp:
                assert resp.status == 400, bad
                assert "accepted" in (await resp.json())["error"]["message"]
        async with api.session.post(f"{base}/_sim/outage", params={"seconds": "0.6"}) as resp:
            assert resp.status == 200
            assert await resp.json() == {"ok": True, "seconds": 0.6}

        async def refused() -> bool:
            return await _refused(api.sim.port)

        await wait_for(refused, timeout=5, interval=0.005)
        await asyncio.wait_for(api.sim.until_serving(), 10)
        async with api.session.get(f"{base}/_sim/stats") as resp:
            assert (await resp.json())["outages"] == 1


async def test_outage_every_plays_outages_during_the_run() -> None:
    """outage_every=0.4 with outage_seconds=0.3: outages recur during the run, refusing connections each time."""
    async with running(outage_every=0.4, outage_seconds=0.3) as api:
        seen_refused = False

        async def two_outages() -> bool:
            nonlocal seen_refused
            seen_refused = seen_refused or await _refused(api.sim.port)
            return seen_refused and api.sim.stats()["outages"] >= 2

        await wait_for(two_outages, timeout=15, interval=0.01)
        stats = api.sim.stats()
        assert stats["outage_seconds"] == pytest.approx(0.3 * stats["outages"], abs=0.01)


# ------------------------------------------------------------------------- wire: mixed

# Half the requests are ready at once (after a microsecond), half take 1000-2000 s:
# which ones depends only on the seed, so a sequential transcript is reproducible.
_HALF_PENDING = "longtail:0.000001:0.000001:0.5:2000000000"
_BUSY_RATES = {"empty": 0.05, "auth": 0.3, "overload": 0.05, "junk": 0.15, "opaque": 0.3}


class _MixedDriver:
    """A sequential client that survives the mixed wire and records what it saw."""

    def __init__(self, api: Api, seed: int = 0) -> None:
        self.api = api
        self.rids: list[str] = []
        self.rng = random.Random(seed)
        self.calls = 0
        self.transcript: list[tuple[object, ...]] = []

    async def call(self, method: str, url: str, *, auth: bool = False, **kw: Any) -> None:
        self.calls += 1
        try:
            async with self.api.session.request(
                method, url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=10), **kw
            ) as resp:
                body = await resp.read()
                names = sorted(
                    h
                    for h in (
                        "X-Created",
                        "X-location",
                        "Location",
                        "Retry-After",
                        "X-Loadbalancer",
                    )
                    if h in resp.headers
                )
                shown: object = len(body) if auth or len(body) > 400 else body
                self.transcript.append((resp.status, resp.content_type, *names, shown))
                if method == "POST" and not auth and resp.status in (200, 201):
                    self.rids.append((await request_id_of(resp))[1])
        except aiohttp.ClientConnectorError:
            self.transcript.append(("refused",))
            await asyncio.wait_for(self.api.sim.until_serving(), 10)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            self.transcript.append(("disconnected",))  # an empty reply or a reset
        except aiohttp.ClientError as exc:
            self.transcript.append((type(exc).__name__,))

    async def round(self, i: int) -> None:
        base, token = self.api.sim.base_url, {"access_token": self.api.sim.token}
        # Every fourth asks for a report POST (to a closed loopback port): signed or not.
        report = {"report": "http://127.0.0.1:9/hook"} if i % 4 == 0 else {}
        await self.call("POST", f"{base}/v2/profile/{i}/datarequest", params=token | report)
        if self.rids:
            for suffix in ("", "", "/data", "/status"):
                rid = self.rng.choice(self.rids)
                await self.call("GET", f"{base}/v2/datarequest/{rid}{suffix}", params=token)
        if i % 2 == 0:
            await self.call("POST", self.api.sim.auth_url, data=token, auth=True)


async def test_mixed_wire_plays_every_variant() -> None:
    """wire='mixed' over a few hundred calls plays every documented and observed variant at least once."""
    async with running(
        wire="mixed",
        seed=2,
        prepare_delay=_HALF_PENDING,
        export_size=1_500,
        slow_seconds=0.01,
        auth_fault_kinds=AUTH_FAULT_KINDS,
        mixed_rates=_BUSY_RATES,
        outage_every=0.5,
        outage_seconds=0.2,
    ) as api:
        driver = _MixedDriver(api)
        missing = list(WIRE_VARIANTS)
        for i in range(1, 800):
            await driver.round(i)
            missing = [v for v, n in api.sim.stats()["wire"].items() if n == 0]
            if not missing:
                break
        print(f"every variant met after {driver.calls} calls")
        assert missing == []
        assert set(api.sim.stats()["wire"]) == set(WIRE_VARIANTS)
        assert driver.calls < 3_000


async def _mixed_transcript(seed: int, rounds: int = 60) -> list[tuple[object, ...]]:
    async with running(
        wire="mixed",
        seed=seed,
        prepare_delay=_HALF_PENDING,
        export_size=1_500,
        slow_seconds=0.01,
        mixed_rates=_BUSY_RATES,
        outage_every=None,
    ) as api:
        driver = _MixedDriver(api)
        for i in range(1, rounds + 1):
            await driver.round(i)
        return driver.transcript


async def test_mixed_wire_is_reproducible_per_seed() -> None:
    """The same seed and the same sequential calls give the same mixed answers; another seed others."""
    first = await _mixed_transcript(5)
    assert len(first) > 250
    statuses = {entry[0] for entry in first}
    assert {200, 201, 404, 429, "disconnected"} <= statuses
    assert await _mixed_transcript(5) == first
    assert await _mixed_transcript(6) != first


async def test_mixed_wire_throttles_in_every_style_when_the_limiter_refuses() -> None:
    """In the mixed wire the rate limiter decides when to refuse; each refusal draws one of the five styles."""
    async with running(
        wire="mixed", rate_limit=0.5, burst=1, outage_every=None, mixed_exclude=frozenset({"empty"})
    ) as api:
        statuses = [(await api.get("datarequest/123/status")).status for _ in range(80)]
        throttled = api.sim.stats()["throttled"]
        assert sum(throttled.values()) == 80 - statuses.count(200) >= 70
        assert all(throttled[style] > 0 for style in THROTTLE_STYLES), throttled
        assert {429, 503, 504} <= set(statuses)


async def test_mixed_exclude_keeps_the_fixed_variants() -> None:
    """Groups in mixed_exclude play the fixed knobs while the others still vary."""
    others = frozenset(MIXED_GROUPS) - {"request-id"}
    async with running(wire="mixed", mixed_exclude=others, prepare_delay="60") as api:
        for i in range(30):
            rid = await api.create("profile", str(i))  # 201 with X-Created, as fixed
            assert await (await api.get(f"datarequest/{rid}")).json() == {
                "data": "Data not available (yet)"
            }
        wire = api.sim.stats()["wire"]
        assert (wire["post-200"], wire["rid-location"], wire["placeholder-info"]) == (0, 0, 0)
        assert wire["rid-opaque"] > 0 and wire["rid-numeric"] > 0


def _json_object(body: bytes, content_type: str) -> dict[str, Any] | None:
    """The body as a JSON object, or None (not JSON, or JSON but not an object)."""
    if content_type != "application/json":
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class _CountingClient:
    """A client that retries through the mixed wire, counting its calls and the disrupted ones."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.params = {"access_token": api.sim.token}
        self.calls = 0
        self.disrupted = 0

    async def call(self, method: str, path: str) -> tuple[int, str, bytes, dict[str, str]]:
        """(status, content type, body, headers); status 0 when no answer came."""
        self.calls += 1
        url = self.api.sim.base_url + path
        try:
            async with self.api.session.request(method, url, params=self.params) as resp:
                body = await resp.read()
                if resp.status >= 400 and resp.status != 404:
                    self.disrupted += 1
                return resp.status, resp.content_type, body, dict(resp.headers)
        except aiohttp.ClientConnectorError:
            self.disrupted += 1
            await asyncio.wait_for(self.api.sim.until_serving(), 10)
        except aiohttp.ClientError:
            self.disrupted += 1
        return 0, "", b"", {}

    async def submit(self, target: int) -> str:
        """POST until an answer carries a request ID, and return it."""
        while True:
            status, kind, body, headers = await self.call(
                "POST", f"/v2/profile/{target}/datarequest"
            )
            if status in (200, 201):
                return request_id_from(headers, kind, body)[1]

    async def download(self, rid: str) -> tuple[bytes, dict[str, Any]]:
        """GET until the answer is a whole export; a junk 200 counts as a disruption."""
        while True:
            status, kind, body, _ = await self.call("GET", f"/v2/datarequest/{rid}")
            if status != 200:
                continue
            doc = _json_object(body, kind)
            if doc is not None and isinstance(doc.get("data"), list):
                return body, doc
            if not (doc is not None and isinstance(doc.get("data"), str)):
                self.disrupted += 1  # a junk 200, answered properly next time
            else:
                await asyncio.sleep(0.005)  # a placeholder: poll again shortly


async def test_mixed_defaults_are_survivable() -> None:
    """With its default rates the mixed wire disrupts only a few percent of calls and a retrying client gets every export."""
    async with running(wire="mixed", seed=1, prepare_delay="0:0.05", export_size=4_000) as api:
        client = _CountingClient(api)
        for target in range(1, 61):
            rid = await client.submit(target)
            body, doc = await client.download(rid)
            async with api.session.get(f"{api.sim.base_url}/_sim/datarequest/{rid}") as admin:
                assert (await admin.json())["sha256"] == hashlib.sha256(body).hexdigest()
            assert doc["info"] == {"type": "profile", "id": target}
        calls, disrupted = client.calls, client.disrupted
        print(f"mixed defaults: {disrupted} of {calls} calls disrupted")
        assert disrupted / calls < 0.1, (disrupted, calls)


async def test_an_overload_episode_refuses_every_call_then_ends() -> None:
    """POST /_sim/overload?seconds=S: 503 "Loadbalancer Error" whatever the pace, then the API again."""
    async with running() as api:
        admin = f"{api.sim.base_url}/_sim/overload"
        for bad in ("0", "-1", "abc", "3601", ""):
            async with api.session.post(admin, params={"seconds": bad}) as resp:
                assert resp.status == 400
                assert "0 < S <= 3600" in await resp.text()
        async with api.session.post(admin, params={"seconds": "0.5"}) as resp:
            assert resp.status == 200 and (await resp.json())["seconds"] == 0.5
        refused = await api.post("profile", "1")
        assert refused.status == 503 and "Retry-After" not in refused.headers
        body = await refused.read()
        assert is_overload(refused.status, refused.headers, body)

        async def served() -> bool:
            return (await api.post("profile", "1")).status == 201

        await wait_for(served, timeout=10)
