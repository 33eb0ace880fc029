"""The embedded simulator, driven over real HTTP on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_export.simulator import Simulator, SimulatorConfig, parse_delay, parse_size
from batch_export.simulator.exports import ExportSpec, export_chunks, export_length
from tests.simulator_helpers import Api, running, wait_for

pytestmark = pytest.mark.timeout(60)

# ------------------------------------------------------------------------- config parsing


def test_parse_size_units():
    """Sizes accept plain bytes and decimal k/m/g units."""
    assert parse_size("512") == 512
    assert parse_size("20k") == 20_000
    assert parse_size("1m") == 1_000_000
    assert parse_size("1g") == 1_000_000_000
    assert parse_size("1.5M") == 1_500_000
    for bad in ("", "abc", "-1", "1t", "k"):
        with pytest.raises(ValueError, match="accepted"):
            parse_size(bad)


def test_parse_delay_specs():
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


def test_delays_are_deterministic_per_seed():
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
def test_export_body_exact_size_and_valid_json(size, kind, behaviour):
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


def test_export_streams_fast_without_building_the_body():
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
async def test_post_answers_201_with_headers_and_empty_body(version):
    """POST datarequest: 201, empty body, X-Created and X-location naming an opaque string ID."""
    async with running(version) as api:
        resp = await api.post("profile", "123")
        assert resp.status == 201
        assert await resp.read() == b""
        rid = resp.headers["X-Created"]
        assert rid.startswith("dr_") and not rid.isdigit() and len(rid) == 23
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


async def test_post_validation_errors():
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


async def test_report_parameter_in_query_json_and_form():
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
async def test_lifecycle_placeholder_ready_expired(version):
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
            return now["status"] == "pending" and now["available"] > first["available"]

        await wait_for(grew)

        async def ready() -> bool:
            return (await api.status(rid))["status"] == "available"

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
            return (await api.status(rid))["status"] == "not available"

        await wait_for(expired)
        assert await api.status(rid) == {"status": "not available"}
        for path in (f"datarequest/{rid}", f"datarequest/{rid}/data"):
            gone = await api.get(path)
            assert gone.status == 404
            assert "error" in await gone.json()
        assert api.sim.stats()["expired_seen"] >= 3


async def test_unknown_request_id_is_not_available():
    """An unknown request ID: /status 'not available', the GETs 404 with error JSON."""
    async with running() as api:
        assert await api.status("dr_nosuchthing") == {"status": "not available"}
        for path in ("datarequest/dr_nosuchthing", "datarequest/dr_nosuchthing/data"):
            resp = await api.get(path)
            assert resp.status == 404
            assert "message" in (await resp.json())["error"]


async def test_export_is_deterministic_and_matches_admin_sha():
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


async def test_id_as_string():
    """With id_as_string the export's info.id is a JSON string."""
    async with running(id_as_string=True) as api:
        rid = await api.create("subprofile", "55")
        doc = await (await api.get(f"datarequest/{rid}")).json()
        assert doc["info"] == {"type": "subprofile", "id": "55"}


# ----------------------------------------------------------------------------------- auth


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_query_token_auth_failures(version):
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


async def test_v4_jwt_auth_failures():
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


async def test_jwt_claims_and_expiry():
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


async def test_rate_limit_429_with_retry_after_seconds():
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


async def test_rate_limit_retry_after_http_date():
    """With retry_after_http_date the 429's Retry-After is an HTTP date in the near future."""
    async with running(rate_limit=0.2, burst=1, retry_after_http_date=True) as api:
        assert (await api.post("profile", "1")).status == 201
        limited = await api.post("profile", "2")
        assert limited.status == 429
        when = parsedate_to_datetime(limited.headers["Retry-After"])
        assert limited.headers["Retry-After"].endswith("GMT")
        delta = (when - datetime.now(timezone.utc)).total_seconds()
        assert 3 <= delta <= 8


async def test_rate_limit_is_per_token_and_covers_authenticate():
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
async def test_fault_5xx_has_no_side_effect(kind):
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


async def test_fault_reset_post_creates_then_drops():
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
async def test_fault_cuts_export_mid_body(kind):
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


async def test_fault_slow_stalls_then_answers():
    """A 'slow' fault delays the answer by slow_seconds and then answers normally."""
    async with running(fault_rate=1.0, fault_kinds=("slow",), slow_seconds=0.4) as api:
        start = time.monotonic()
        resp = await api.post("profile", "1")
        assert resp.status == 201
        assert time.monotonic() - start >= 0.4
        assert api.sim.stats()["faults"]["slow"] == 1


async def test_fault_rate_is_split_and_seeded():
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


async def test_hostile_export_bodies():
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


async def test_hostile_placeholder_forever_and_short_body():
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


async def test_hostile_post_answers():
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


async def test_redirect_to_other_host_without_following():
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


async def test_report_webhook_delivers_export_to_loopback():
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
                return api.sim.stats()["webhooks"]["sent"] == 1

            await wait_for(counted)
    finally:
        await runner.cleanup()


# -------------------------------------------------------------------------------- listing


async def test_profileids_paging_and_limits():
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


async def test_wrapped_id_lists_and_subprofileids():
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


async def test_stats_log_and_reset():
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
