"""Proof of origin for pushed files: signed deliveries are verified, forgeries refused.

A real DNS server (dnslib, on 127.0.0.1) serves the simulator's DKIM record,
so every check goes through dnspython exactly as against the platform's.
The simulator's signing key is generated once per process and seed, so the
test process holds the same key as the simulator it starts: it can forge a
delivery the platform "signed" (a replay, another account) as well as one
signed by a stranger's key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import QTYPE, RCODE, RR, TXT  # type: ignore[import-untyped]
from dnslib.server import DNSLogger, DNSServer  # type: ignore[import-untyped]

from batch_export.errors import ConfigError
from batch_export.input.ids import Target, TargetKind
from batch_export.platform.push import PushConflict, PushReceiver, wait_for_push
from batch_export.platform.push_keys import DnsKeys, parse_dns_server
from batch_export.platform.push_origin import OriginVerifier
from batch_export.platform.push_signature import (
    OriginError,
    check_key_id,
    parse_digest,
    parse_signature,
)
from batch_export.platform.settings import ApiSettings
from batch_export.redaction import Secret
from batch_export.run.options import RunOptions
from batch_export.run.orchestrate import run_export
from batch_export.simulator.config import SimulatorConfig
from batch_export.simulator.signing import ReportSigner, signed_headers
from batch_export.simulator.stats import Stats
from batch_export.simulator.wire import Wire
from batch_export.storage.local import LocalSink, prepare_out_dir

from .conftest import (
    SimThread,
    StartSimulator,
    api_args,
    read_manifest,
    run_cli,
    run_subprocess,
    write_ids,
)
from .simulator_helpers import PostRelay

SIGNER = ReportSigner(0, 1)  # the key of every seed-0 simulator in this process
KEY_ID = SIGNER.key_id
GOOD = json.dumps({"info": {"type": "profile", "id": 12}, "data": [[{"open": 1}]]}).encode()
FORGED = json.dumps({"info": {"type": "profile", "id": 12}, "data": [[{"forged": 1}]]}).encode()


# --------------------------------------------------------------------------- DNS


class _TxtZone:
    """A dnslib resolver: TXT records by name, NXDOMAIN otherwise; every query kept."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = records
        self.queries: list[str] = []
        self._lock = threading.Lock()

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        with self._lock:
            self.queries.append(name)
        text = self.records.get(name)
        if text is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            # A TXT string holds at most 255 bytes: a 2048-bit key takes two.
            parts = [text[i : i + 255] for i in range(0, len(text), 255)]
            reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(parts), ttl=300))
        return reply


class LocalDns:
    """A UDP DNS server on 127.0.0.1 (a free port) serving ``zone``."""

    def __init__(self, zone: _TxtZone) -> None:
        self.zone = zone
        quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-data", logf=lambda _: None)
        self._server = DNSServer(zone, address="127.0.0.1", port=0, logger=quiet)
        self.port = int(self._server.server.server_address[1])
        self.address = f"127.0.0.1:{self.port}"
        self._server.start_thread()

    @property
    def queries(self) -> list[str]:
        return list(self.zone.queries)

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()


@pytest.fixture
def dns() -> Iterator[LocalDns]:
    """A local DNS server publishing the simulator's DKIM record; stopped at teardown."""
    server = LocalDns(_TxtZone(dict(SIGNER.dkim_records())))
    yield server
    server.stop()


# ------------------------------------------------------------------- the parser


def test_signature_parser_reads_quoted_values_with_commas_and_escapes() -> None:
    """Quoted values may hold commas, '=' and escaped quotes; spaces around pairs are fine."""
    params = parse_signature(
        ' keyId="a,b=c\\"d._domainkey.copernica.com" , algorithm=rsa-sha256,'
        'headers="(request-target) host date x-copernica-id digest",signature="AAEC"'
    )
    assert params.key_id == 'a,b=c"d._domainkey.copernica.com'
    assert params.algorithm == "rsa-sha256"
    assert params.headers[0] == "(request-target)" and params.raw == b"\x00\x01\x02"


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ('algorithm="rsa-sha256",headers="(request-target) host date x-copernica-id digest",'
         'signature="AAEC"', "no keyId"),
        ('keyId="k.copernica.com",headers="(request-target) host date x-copernica-id digest"',
         "no signature"),
        ('keyId="k.copernica.com",signature="AAEC"', "does not cover (request-target)"),
        ('keyId="k.copernica.com",headers="host date",signature="AAEC"', "does not cover"),
        ('keyId="k.copernica.com",keyId="x.copernica.com",signature="AAEC"', "twice"),
        ('signature="AAEC",keyId="k.copernica.com', "no closing quote"),
        ('keyId="k.copernica.com" signature="AAEC"', "without a comma"),
        ("just some text", "name=value"),
        ('keyId="k.copernica.com",algorithm="hmac-sha256",signature="AAEC"', "not rsa-sha256"),
        ('keyId="k.copernica.com",headers="(request-target) host date x-copernica-id digest",'
         'signature="not base64!"', "not base64"),
    ],
)  # fmt: skip
def test_signature_parser_refuses_what_is_missing_or_malformed(header: str, problem: str) -> None:
    """Missing keyId/signature, too few signed headers, duplicates and bad quoting are refused."""
    with pytest.raises(OriginError, match=re.escape(problem)):
        parse_signature(header)


@pytest.mark.parametrize(
    "key_id",
    ["evil.com", "copernica.com.evil.com", "xcopernica.com", "copernica.com", "a..copernica.com"],
)
def test_key_ids_outside_copernica_com_are_refused(key_id: str) -> None:
    """Only DNS names below copernica.com may name a key (403: never looked up)."""
    with pytest.raises(OriginError) as caught:
        check_key_id(key_id)
    assert caught.value.status == 403
    assert check_key_id("S1._DomainKey.Copernica.com.") == "s1._domainkey.copernica.com"


def test_digest_header_reads_sha256_among_others() -> None:
    """RFC 3230 lists several digests; the SHA-256 one is used, and one is required."""
    sha = hashlib.sha256(b"x").digest()
    encoded = base64.b64encode(sha).decode()
    assert parse_digest(f"MD5=abc, sha-256={encoded}") == sha
    with pytest.raises(OriginError, match="no SHA-256"):
        parse_digest("MD5=abc")


def test_dns_server_option_takes_an_address_and_a_port() -> None:
    """--push-dns-server is an IP with an optional port; a name is refused with an example."""
    assert parse_dns_server("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_dns_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_dns_server("[::1]:5353") == ("::1", 5353)
    assert parse_dns_server("::1") == ("::1", 53)
    for bad in ("dns.example.com", "127.0.0.1:0", "127.0.0.1:x", "[::1]x"):
        with pytest.raises(ConfigError, match=re.escape("e.g. 127.0.0.1:5353")):
            parse_dns_server(bad)


# ------------------------------------------------------------- at the receiver


def _receiver(
    out: Path,
    dns: LocalDns,
    *,
    require: bool = False,
    on_conflict: Callable[[PushConflict], Awaitable[None]] | None = None,
) -> tuple[PushReceiver, DnsKeys]:
    """A profile receiver on a free loopback port whose keys come from ``dns``; account 1."""
    keys = DnsKeys(parse_dns_server(dns.address))
    verifier = OriginVerifier(keys, account="account_1", require_signature=require)
    receiver = PushReceiver(
        LocalSink(out), TargetKind.PROFILE, host="127.0.0.1", port=0, public_url=None,
        on_conflict=on_conflict, origin=verifier,
    )  # fmt: skip
    return receiver, keys


def _signed(
    url: str,
    body: bytes,
    *,
    key: rsa.RSAPrivateKey | None = None,
    key_id: str = KEY_ID,
    account: str = "account_1",
    age: float = 0.0,
) -> dict[str, str]:
    return signed_headers(
        key or SIGNER.key, key_id, url, hashlib.sha256(body).digest(), account, time.time() - age
    )


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    async with session.post(url, data=body, headers=headers) as resp:
        return resp.status, (await resp.json() if resp.status >= 400 else None)


async def test_a_genuine_signed_delivery_is_saved_with_its_evidence(
    tmp_path: Path, dns: LocalDns
) -> None:
    """A delivery the platform signed is saved; SavedExport.origin holds the signed headers."""
    out = prepare_out_dir(tmp_path / "out")
    receiver, _ = _receiver(out, dns, require=True)
    async with receiver, aiohttp.ClientSession() as session:
        future = receiver.expect(Target(TargetKind.PROFILE, "12"), "dr_1")
        headers = _signed(receiver.report_url, GOOD)
        assert (await _post(session, receiver.report_url, GOOD, headers))[0] == 204
        saved = await wait_for_push(future, 5, asyncio.Event())
    assert saved is not None and (out / saved.file).read_bytes() == GOOD
    origin = saved.origin
    assert origin is not None
    assert origin["signed"] is origin["verified"] is True
    assert (origin["key_id"], origin["account"]) == (KEY_ID, "account_1")
    assert origin["headers"] == "(request-target) host date x-copernica-id digest"
    assert (origin["date"], origin["digest"]) == (headers["Date"], headers["Digest"])
    assert headers["Signature"].endswith(f'signature="{origin["signature"]}"')
    assert receiver.report_url.rsplit("/", 1)[1] not in json.dumps(origin)  # never the secret
    assert receiver.verified == 1 and dns.queries == [KEY_ID]


def _forgeries(url: str) -> dict[str, tuple[bytes, dict[str, str], int]]:
    """Deliveries to the right secret path, for the right target, that must all be refused."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    big = json.dumps({"info": {"type": "profile", "id": 12}, "data": [["x" * 200_000]]}).encode()
    return {
        "unsigned": (FORGED, {}, 401),
        "another key": (FORGED, _signed(url, FORGED, key=stranger), 401),
        "wrong digest": (FORGED, _signed(url, GOOD), 403),
        "wrong digest, streamed": (big + b" ", _signed(url, big), 403),
        "stale date": (FORGED, _signed(url, FORGED, age=120), 401),
        "date ahead": (FORGED, _signed(url, FORGED, age=-120), 401),
        "wrong account": (FORGED, _signed(url, FORGED, account="account_2"), 403),
        "unknown key": (FORGED, _signed(url, FORGED, key_id="nope._domainkey.copernica.com"), 401),
    }


async def test_forged_deliveries_are_refused_and_the_genuine_one_kept(
    tmp_path: Path, dns: LocalDns
) -> None:
    """No signature, a stranger's key, a wrong digest, a stale Date, another account: all refused."""
    out = prepare_out_dir(tmp_path / "out")
    target = Target(TargetKind.PROFILE, "12")
    receiver, _ = _receiver(out, dns, require=True)
    async with receiver, aiohttp.ClientSession() as session:
        future = receiver.expect(target, "dr_1")
        for name, (body, headers, status) in _forgeries(receiver.report_url).items():
            answer, error = await _post(session, receiver.report_url, body, headers)
            assert (name, answer) == (name, status)
            assert error["error"]["message"]
            assert not future.done(), name  # a refused delivery is not the target's delivery
            assert not (out / LocalSink(out).locate(target)).exists(), name
            assert not any((out / ".partial").iterdir()), name
        genuine = _signed(receiver.report_url, GOOD)
        assert (await _post(session, receiver.report_url, GOOD, genuine))[0] == 204
        saved = await wait_for_push(future, 5, asyncio.Event())
    assert saved is not None and (out / saved.file).read_bytes() == GOOD
    assert receiver.rejected == len(_forgeries("http://x/y")) and receiver.received == 1


async def test_a_later_forged_delivery_raises_no_conflict(tmp_path: Path, dns: LocalDns) -> None:
    """After the genuine delivery, a forged second one is refused before any comparison."""
    out = prepare_out_dir(tmp_path / "out")
    target = Target(TargetKind.PROFILE, "12")
    conflicts: list[PushConflict] = []

    async def on_conflict(conflict: PushConflict) -> None:
        conflicts.append(conflict)

    receiver, _ = _receiver(out, dns, on_conflict=on_conflict)
    async with receiver, aiohttp.ClientSession() as session:
        future = receiver.expect(target, "dr_1")
        url = receiver.report_url
        assert (await _post(session, url, GOOD, _signed(url, GOOD)))[0] == 204
        assert future.done()
        receiver.forget(target.id)
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert (await _post(session, url, FORGED, _signed(url, FORGED, key=stranger)))[0] == 401
        assert (await _post(session, url, FORGED, _signed(url, GOOD)))[0] == 403
        assert (await _post(session, url, GOOD, _signed(url, GOOD)))[0] == 204  # a repeat
    assert conflicts == [] and receiver.repeated == 1


async def test_a_key_outside_copernica_com_is_refused_without_a_dns_query(
    tmp_path: Path, dns: LocalDns
) -> None:
    """keyId=evil.example: 403 at once; the DNS server is never asked."""
    out = prepare_out_dir(tmp_path / "out")
    dns.zone.records["key.evil.example"] = SIGNER.dkim_records()[KEY_ID]
    receiver, _ = _receiver(out, dns)
    async with receiver, aiohttp.ClientSession() as session:
        receiver.expect(Target(TargetKind.PROFILE, "12"), "dr_1")
        url = receiver.report_url
        headers = _signed(url, GOOD, key_id="key.evil.example")
        assert (await _post(session, url, GOOD, headers))[0] == 403
    assert dns.queries == []


async def test_a_flood_of_deliveries_costs_one_lookup_per_key(
    tmp_path: Path, dns: LocalDns
) -> None:
    """Fifty concurrent deliveries naming one keyId share one DNS query; unknown names are capped."""
    out = prepare_out_dir(tmp_path / "out")
    receiver, keys = _receiver(out, dns)
    async with receiver, aiohttp.ClientSession() as session:
        url = receiver.report_url
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        headers = _signed(url, FORGED, key=stranger)
        answers = await asyncio.gather(*(_post(session, url, FORGED, headers) for _ in range(50)))
        assert {status for status, _ in answers} == {401}
        assert dns.queries == [KEY_ID]
        for i in range(100):  # made-up names: each is one query, until the run's budget is spent
            named = _signed(url, FORGED, key_id=f"k{i}._domainkey.copernica.com")
            assert (await _post(session, url, FORGED, named))[0] in (401, 503)
    assert len(dns.queries) == keys.lookups == 64


# -------------------------------------------------------------- whole runs


class _OriginProxy(PostRelay):
    """The ``--push-url``: before relaying each genuine delivery, sends every forgery."""

    def __init__(self, listener: str) -> None:
        self._listener = listener
        self.statuses: dict[str, list[int]] = {}

    async def _relay(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        rid = request.headers["X-Datarequest-Id"]
        public = f"{self.url}/{request.path.rsplit('/', 1)[1]}"  # the signed address
        target = f"{self._listener}/{request.path.rsplit('/', 1)[1]}"
        forged = body.replace(b'"data": [', b'"data": [[{"forged": true}], ', 1)
        for name, (fake, headers, _) in _run_forgeries(public, body, forged).items():
            async with self._session.post(
                target, data=fake, headers={**headers, "X-Datarequest-Id": rid}
            ) as resp:
                self.statuses.setdefault(name, []).append(resp.status)
        relayed = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length",)}
        async with self._session.post(target, data=body, headers=relayed) as resp:
            self.statuses.setdefault("genuine", []).append(resp.status)
            return web.Response(status=resp.status)


def _run_forgeries(
    url: str, body: bytes, forged: bytes
) -> dict[str, tuple[bytes, dict[str, str], int]]:
    """What a forger with the secret path sends for a target, and the answer each must get."""
    stranger = _STRANGER
    return {
        "unsigned": (forged, {"Content-Type": "application/json"}, 401),
        "another key": (forged, _signed(url, forged, key=stranger), 401),
        "wrong digest": (forged, _signed(url, body), 403),
        "stale date": (forged, _signed(url, forged, age=90), 401),
        "wrong account": (forged, _signed(url, forged, account="account_2"), 403),
    }


_STRANGER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _journal(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()[1:]]


async def test_a_run_keeps_the_genuine_delivery_and_its_origin_in_journal_and_manifest(
    simulator: StartSimulator, tmp_path: Path, dns: LocalDns, unused_tcp_port: int
) -> None:
    """Every forgery refused in a real run; the done line and the manifest carry the origin."""
    sim = simulator(prepare_delay="0.1", sign_reports=True)
    out = tmp_path / "out"
    listen = f"127.0.0.1:{unused_tcp_port}"
    async with _OriginProxy(f"http://{listen}") as proxy:
        options = _options(
            sim, out, write_ids(tmp_path / "ids.csv", [1, 2]), listen, proxy.url, dns
        )
        result = await asyncio.wait_for(run_export(options), 60)
    assert result.exit_code == 0
    assert proxy.statuses == {
        "unsigned": [401, 401],
        "another key": [401, 401],
        "wrong digest": [403, 403],
        "stale date": [401, 401],
        "wrong account": [403, 403],
        "genuine": [204, 204],
    }
    assert result.summary["push"] == {"received": 2, "rejected": 10, "verified": 2}
    assert sim.stats()["requests"]["GET datarequest"] == 0  # nothing had to be polled
    truth = {e["id"]: e for e in read_manifest(out)}
    for target in ("1", "2"):
        entry = truth[target]
        assert entry["status"] == "done" and entry["origin"]["verified"] is True
        assert entry["origin"]["account"] == "account_1" and entry["origin"]["key_id"] == KEY_ID
        done = [line for line in _journal(out) if line["ev"] == "done" and line["id"] == target]
        assert [line["origin"] for line in done] == [entry["origin"]]
        rid = entry["request_id"]
        expected = await asyncio.to_thread(sim.get, f"/_sim/datarequest/{rid}")
        assert hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest() == expected["sha256"]
    assert not [line for line in _journal(out) if line["ev"] == "push-conflict"]


def _options(
    sim: SimThread, out: Path, ids: Path, listen: str, public: str | None, dns: LocalDns
) -> RunOptions:
    return RunOptions(
        input=str(ids),
        out_dir=out,
        api=ApiSettings(
            api_url=sim.base_url, auth_url=sim.auth_url, api_version=2, token=Secret(sim.token)
        ),
        push_listen=listen,
        push_public_url=public,
        push_grace=30,
        account_id="1",
        push_require_signature=True,
        push_dns_server=dns.address,
        handle_signals=False,
    )


def test_unsigned_deliveries_are_refused_when_a_signature_is_required(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """--push-require-signature against a platform that does not sign: refused, polled, done."""
    sim = simulator(prepare_delay="0.05:0.2", sign_reports=False)
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", range(1, 11))
    push = ["--push-listen", "127.0.0.1:0", "--push-grace", "1", "--push-require-signature"]
    result = run_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim), *push, "--json"], sim.token
    )
    assert result.exit_code == 0, result.stderr
    entries = read_manifest(out)
    assert {e["status"] for e in entries} == {"done"} and len(entries) == 10
    assert all("origin" not in e for e in entries)  # fetched by polling, not pushed
    summary = json.loads(result.stdout)
    push_counts = summary["push"]
    # The platform tries each refused delivery again (4 attempts): at least one refusal each.
    assert push_counts["received"] == push_counts["verified"] == 0
    assert push_counts["rejected"] >= 10
    assert sim.stats()["requests"]["GET datarequest"] >= 10


def test_a_signed_run_from_the_command_line_verifies_every_file(
    simulator: StartSimulator, tmp_path: Path, dns: LocalDns
) -> None:
    """The CLI with --account-id, --push-require-signature and --push-dns-server: every origin verified."""
    sim = simulator(prepare_delay="0.1:0.3", sign_reports=True)
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", range(1, 31))
    push = ["--push-listen", "127.0.0.1:0", "--push-grace", "30", "--account-id", "1"]
    push += ["--push-require-signature", "--push-dns-server", dns.address]
    done = run_subprocess(["run", str(ids), "--out", str(out), *api_args(sim), *push], sim.token)
    assert done.returncode == 0, done.stderr
    entries = read_manifest(out)
    assert len(entries) == 30 and {e["status"] for e in entries} == {"done"}
    assert all(e["origin"]["verified"] is True for e in entries)
    assert sim.stats()["requests"]["GET datarequest"] == 0
    assert dns.queries == [KEY_ID]  # one lookup for the whole run
    assert sim.token not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--push-require-signature"], "--push-require-signature checks pushed deliveries"),
        (["--account-id", "1"], "add --push-listen"),
        (["--push-listen", "127.0.0.1:0", "--account-id", "acme"], "e.g. --account-id 12345"),
        (
            ["--push-listen", "127.0.0.1:0", "--push-dns-server", "ns.example"],
            "e.g. 127.0.0.1:5353",
        ),
    ],
)
def test_bad_origin_options_are_refused_with_a_fix(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """The proof-of-origin options without push mode, or malformed: exit 2, a fix, no traceback."""
    ids = write_ids(tmp_path / "ids.csv", [1])
    result = run_cli(["run", str(ids), "--out", str(tmp_path / "o"), *args], "tok")
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- the simulator


def test_the_mixed_wire_plays_signed_and_unsigned_reports() -> None:
    """Mixed: both at random, each counted; classic: the sign_reports knob, always."""
    stats = Stats()
    wire = Wire(SimulatorConfig(wire="mixed", seed=3), stats)
    drawn = [wire.report_signed() for _ in range(200)]
    assert 50 < sum(drawn) < 150
    assert stats.wire["report-signed"] == sum(drawn)
    assert stats.wire["report-unsigned"] == 200 - sum(drawn)
    classic = Wire(SimulatorConfig(sign_reports=True), Stats())
    assert all(classic.report_signed() for _ in range(20))
    excluded = Wire(SimulatorConfig(wire="mixed", mixed_exclude=frozenset({"signature"})), Stats())
    assert not any(excluded.report_signed() for _ in range(20))


def test_the_simulator_publishes_its_dkim_record(simulator: StartSimulator) -> None:
    """GET /_sim/dkim gives the keyId under copernica.com and its DKIM TXT record."""
    sim = simulator()
    records = sim.get("/_sim/dkim")
    assert records == SIGNER.dkim_records()
    (name,) = records
    assert name.endswith("._domainkey.copernica.com")
    assert records[name].startswith("v=DKIM1; k=rsa; p=")
