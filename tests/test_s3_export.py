"""Whole runs into object storage: ``batch-export run … --to s3://…`` against a real SeaweedFS.

Every run is the real CLI in a child process, against the simulator over
HTTP and SeaweedFS over S3, both on 127.0.0.1; the bucket is inspected
with a plain botocore client from outside, as an auditor would.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    CLI_MODULE,
    SimThread,
    StartSimulator,
    api_args,
    read_manifest,
    run_subprocess,
    spawn_cli,
    write_ids,
)
from .seaweed import ACCESS_KEY, SECRET_KEY, Seaweed, make_bucket

MB = 1024 * 1024


def new_bucket(server: Seaweed, *, lock: bool) -> str:
    name = f"{'locked' if lock else 'plain'}-{uuid.uuid4().hex[:10]}"
    make_bucket(server, name, lock=lock)
    return name


def s3_args(server: Seaweed, bucket: str, prefix: str = "2026-12") -> list[str]:
    return ["--to", f"s3://{bucket}/{prefix}", "--s3-endpoint-url", server.endpoint]


def cli(
    args: Sequence[str],
    token: str | None,
    env: dict[str, str],
    *,
    timeout: float = 180,
    python_args: Sequence[str] = CLI_MODULE,
) -> subprocess.CompletedProcess[str]:
    """The CLI run to completion in a child process with ``env`` added (the S3 credentials)."""
    return run_subprocess(args, token, timeout=timeout, python_args=python_args, extra_env=env)


def run(
    server: Seaweed, sim: SimThread, args: Sequence[str], *, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return cli([*args, *api_args(sim), "--no-progress"], sim.token, server.env(), timeout=timeout)


def objects(server: Seaweed, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Every current object under ``prefix``, by key relative to it."""
    client = server.client()
    found: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix + "/"
    ):
        for item in page.get("Contents", []):
            found[item["Key"][len(prefix) + 1 :]] = item
    return found


def body_of(server: Seaweed, bucket: str, key: str) -> bytes:
    answer = server.client().get_object(Bucket=bucket, Key=key)
    data: bytes = answer["Body"].read()
    return data


def uploads_left(server: Seaweed, bucket: str) -> list[str]:
    answer = server.client().list_multipart_uploads(Bucket=bucket)
    return [item["Key"] for item in answer.get("Uploads", [])]


def assert_bucket_matches_manifest(
    server: Seaweed, bucket: str, prefix: str, out: Path, *, compressed: bool = False
) -> list[dict[str, Any]]:
    """Every done entry's object is exactly the recorded bytes, the right export, one version."""
    entries = read_manifest(out)
    stored = objects(server, bucket, prefix)
    client = server.client()
    for entry in entries:
        assert entry["status"] == "done", entry
        key = f"{prefix}/{entry['file']}"
        data = body_of(server, bucket, key)
        assert len(data) == entry["bytes"] == stored[entry["file"]]["Size"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        document = json.loads(gzip.decompress(data) if compressed else data)
        assert str(document["info"]["id"]) == entry["id"]
        versions = client.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
        assert len([v for v in versions if v["Key"] == key]) <= 1, f"{key} uploaded twice"
        head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"] == entry["store"]["checksum"]
    # The bucket alone is an archive: the evidence is there too, byte for byte.
    for name in ("manifest.jsonl", "summary.json", "runs.jsonl", "destination.json"):
        assert body_of(server, bucket, f"{prefix}/{name}") == (out / name).read_bytes()
    seals = sorted((out / "seals").glob("*.json"))
    assert seals, "no seal written"
    for seal in seals:
        assert body_of(server, bucket, f"{prefix}/seals/{seal.name}") == seal.read_bytes()
    return entries


def test_a_whole_run_lands_in_a_locked_bucket_exactly(
    seaweed: Seaweed, simulator: StartSimulator, tmp_path: Path
) -> None:
    """60 profiles, two of them multipart: every object exact, locked, undeletable; verify proves it."""
    sim = simulator(export_size=3_000, export_sizes={"7": 12 * MB, "8": 9 * MB})
    bucket = new_bucket(seaweed, lock=True)
    ids = write_ids(tmp_path / "ids.csv", range(1, 61))
    out = tmp_path / "state"
    args = ["run", str(ids), "--out", str(out), *s3_args(seaweed, bucket), "--retention-days", "3"]
    done = run(seaweed, sim, args)
    assert done.returncode == 0, done.stderr
    entries = assert_bucket_matches_manifest(seaweed, bucket, "2026-12", out)
    assert len(entries) == 60
    assert not (out / "exports").exists()  # the state directory holds no personal data
    assert uploads_left(seaweed, bucket) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["s3_multipart"] == 2 and summary["s3_puts"] == 58

    client = seaweed.client()
    soonest = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3) - dt.timedelta(hours=1)
    for entry in entries[:5] + [e for e in entries if e["id"] in ("7", "8")]:
        key = f"2026-12/{entry['file']}"
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"] >= soonest
        assert entry["store"]["retain_until"] and entry["store"]["lock_mode"] == "COMPLIANCE"
        with pytest.raises(client.exceptions.ClientError) as refused:
            client.delete_object(Bucket=bucket, Key=key, VersionId=head["VersionId"])
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    for evidence in ("manifest.jsonl", "seals/000001.json"):
        evidence_head = client.head_object(Bucket=bucket, Key=f"2026-12/{evidence}")
        assert evidence_head["ObjectLockMode"] == "COMPLIANCE", evidence

    for deep in ([], ["--deep"]):
        checked = cli(["verify", str(out), *deep], None, seaweed.env())
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "verified 60 of 60" in checked.stderr

    # The state directory rolled back (its only seal gone): the locked copy in the bucket shows it.
    rolled_back = tmp_path / "rolled-back"
    shutil.copytree(out, rolled_back)
    (rolled_back / "seals/000001.json").unlink()
    checked = cli(["verify", str(rolled_back), "--json"], None, seaweed.env())
    assert checked.returncode == 1
    published = [p for p in json.loads(checked.stdout)["problems"] if p["check"] == "published"]
    assert [p["file"] for p in published] == ["seals/000001.json"]
    assert "is in s3://" in published[0]["problem"]


def test_verify_catches_an_object_overwritten_with_other_bytes(
    seaweed: Seaweed, simulator: StartSimulator, tmp_path: Path
) -> None:
    """Overwritten in a versioned bucket, and in a plain one: verify exits 1 and names the object."""
    sim = simulator(export_size=2_000)
    ids = write_ids(tmp_path / "ids.csv", range(1, 11))
    for lock in (True, False):
        bucket = new_bucket(seaweed, lock=lock)
        out = tmp_path / f"state-{lock}"
        extra = ["--retention-days", "1"] if lock else ["--gzip"]
        done = run(
            seaweed, sim, ["run", str(ids), "--out", str(out), *s3_args(seaweed, bucket), *extra]
        )
        assert done.returncode == 0, done.stderr
        entries = assert_bucket_matches_manifest(
            seaweed, bucket, "2026-12", out, compressed=not lock
        )
        victim = entries[3]
        seaweed.client().put_object(
            Bucket=bucket, Key=f"2026-12/{victim['file']}", Body=b'{"info": {}, "data": []}'
        )
        for deep in ([], ["--deep"]):
            checked = cli(["verify", str(out), "--json", *deep], None, seaweed.env())
            assert checked.returncode == 1, checked.stderr
            report = json.loads(checked.stdout)
            assert [p["file"] for p in report["problems"]] == [victim["file"]]
            assert report["verified"] == 9
        # An object under exports/ that no manifest line names is reported too.
        stray = "exports/profile/000/stray.json"
        seaweed.client().put_object(Bucket=bucket, Key=f"2026-12/{stray}", Body=b"{}")
        checked = cli(["verify", str(out), "--json"], None, seaweed.env())
        assert checked.returncode == 1
        assert json.loads(checked.stdout)["unknown_files"] == [stray]


def test_retention_on_a_bucket_without_object_lock_is_refused_before_any_request(
    seaweed: Seaweed, simulator: StartSimulator, tmp_path: Path
) -> None:
    """Preflight: exit 2 with what to change; the platform was never asked, nothing recorded."""
    sim = simulator()
    bucket = new_bucket(seaweed, lock=False)
    ids = write_ids(tmp_path / "ids.csv", range(1, 6))
    out = tmp_path / "state"
    refused = run(
        seaweed,
        sim,
        [
            "run",
            str(ids),
            "--out",
            str(out),
            *s3_args(seaweed, bucket),
            "--retain-until",
            "2031-01-01",
        ],
    )
    assert refused.returncode == 2, refused.stderr
    assert "Object Lock" in refused.stderr and "Traceback" not in refused.stderr
    assert sim.stats()["requests"].get("POST datarequest", 0) == 0
    assert not (out / "journal.jsonl").exists() and not (out / "destination.json").exists()
    # The same bucket without retention is fine.
    fine = run(seaweed, sim, ["run", str(ids), "--out", str(out), *s3_args(seaweed, bucket)])
    assert fine.returncode == 0, fine.stderr


def test_wrong_credentials_stop_at_once_and_no_secret_is_written(
    seaweed: Seaweed, simulator: StartSimulator, tmp_path: Path
) -> None:
    """A rejected secret: exit 2 with a clear message, no retry, no secret in any output or file."""
    sim = simulator()
    bucket = new_bucket(seaweed, lock=False)
    ids = write_ids(tmp_path / "ids.csv", range(1, 6))
    out = tmp_path / "state"
    wrong = "wrong-secret-" + uuid.uuid4().hex
    env = {**seaweed.env(), "AWS_SECRET_ACCESS_KEY": wrong}
    args = ["run", str(ids), "--out", str(out), *s3_args(seaweed, bucket), *api_args(sim)]
    started = time.monotonic()
    refused = cli([*args, "--no-progress", "-vv"], sim.token, env, timeout=60)
    took = time.monotonic() - started
    assert refused.returncode == 2, refused.stderr
    assert "credentials were rejected" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert took < 60  # no retries: the retry period is 15 minutes
    assert sim.stats()["requests"].get("POST datarequest", 0) == 0
    for text in (
        refused.stdout,
        refused.stderr,
        *(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()),
    ):
        assert wrong not in text and ACCESS_KEY not in text and SECRET_KEY not in text


def test_no_such_bucket_and_a_changed_destination_are_refused(
    seaweed: Seaweed, simulator: StartSimulator, tmp_path: Path
) -> None:
    """A missing bucket names it; a rerun into another place than the first is refused."""
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", range(1, 4))
    out = tmp_path / "state"
    missing = run(
        seaweed, sim, ["run", str(ids), "--out", str(out), *s3_args(seaweed, "no-such-bucket-x")]
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr, missing.stderr
    bucket = new_bucket(seaweed, lock=False)
    assert (
        run(
            seaweed, sim, ["run", str(ids), "--out", str(out), *s3_args(seaweed, bucket)]
        ).returncode
        == 0
    )
    elsewhere = run(
        seaweed, sim, ["run", str(ids), "--out", str(out), *s3_args(seaweed, bucket, "other")]
    )
    assert elsewhere.returncode == 2 and f"s3://{bucket}/2026-12" in elsewhere.stderr
    local = run(seaweed, sim, ["run", str(ids), "--out", str(out)])
    assert local.returncode == 2 and "--to" in local.stderr


def _uploads_in_progress(server: Seaweed, bucket: str, proc: subprocess.Popen[str]) -> bool:
    """Poll (with a deadline) until a multipart upload is open in ``bucket`` (False if ``proc`` ended)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if uploads_left(server, bucket):
            return True
        time.sleep(0.05)
    return False


def test_sigkill_mid_upload_then_resume_leaves_every_object_exact_and_no_upload_behind(
    seaweed: Seaweed, simulator: StartSimulator, tmp_path: Path
) -> None:
    """Killed while multipart uploads are open (twice), the rerun: no orphan, no duplicate, all exact."""
    big = {str(n): 11 * MB for n in (3, 9, 15, 21)}
    sim = simulator(export_size=5_000, export_sizes=big, prepare_delay="0.05:0.5")
    bucket = new_bucket(seaweed, lock=True)
    ids = write_ids(tmp_path / "ids.csv", range(1, 41))
    out = tmp_path / "state"
    args = [
        "run",
        str(ids),
        "--out",
        str(out),
        *s3_args(seaweed, bucket),
        "--retention-days",
        "1",
        *api_args(sim),
        "--no-progress",
        "--rate",
        "30",
    ]
    kills = 0
    for _ in range(2):
        proc = spawn_cli(args, sim.token, env=seaweed.env())
        if _uploads_in_progress(seaweed, bucket, proc):
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=120)
    assert kills >= 1
    final = cli(args, sim.token, seaweed.env(), timeout=180)
    assert final.returncode == 0, final.stderr
    assert uploads_left(seaweed, bucket) == []
    entries = assert_bucket_matches_manifest(seaweed, bucket, "2026-12", out)
    assert len(entries) == 40
    checked = cli(["verify", str(out), "--deep"], None, seaweed.env())
    assert checked.returncode == 0, checked.stdout


# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the forked
# pytest process, whose own RSS it would then report.
_RSS_WRAPPER = """
import atexit, runpy, sys
report = sys.argv.pop(1)

def peak() -> None:
    with open("/proc/self/status") as status, open(report, "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))

atexit.register(peak)
sys.argv[0] = "batch-export"
runpy.run_module("batch_export", run_name="__main__", alter_sys=True)
"""


@pytest.mark.timeout(300)
def test_a_200mb_export_streams_into_the_bucket_in_bounded_memory(
    seaweed: Seaweed, simulator: StartSimulator, tmp_path: Path
) -> None:
    """One 200 MB export, multipart, while the exporter's peak RSS stays under 100 MB."""
    size = 200 * MB
    sim = simulator(export_size=2_000, export_sizes={"1": size}, prepare_delay="0")
    bucket = new_bucket(seaweed, lock=False)
    ids = write_ids(tmp_path / "ids.csv", [1, 2])
    out = tmp_path / "state"
    report = tmp_path / "rss"
    done = cli(
        [
            "run",
            str(ids),
            "--out",
            str(out),
            *s3_args(seaweed, bucket),
            *api_args(sim),
            "--no-progress",
        ],
        sim.token,
        seaweed.env(),
        timeout=280,
        python_args=("-c", _RSS_WRAPPER, str(report)),
    )
    assert done.returncode == 0, done.stderr
    peak_mb = int(report.read_text()) / 1024
    print(f"exporter peak RSS {peak_mb:.1f} MB for a {size // MB} MB export into S3")
    assert peak_mb < 100, f"peak RSS {peak_mb:.1f} MB"
    entry = next(e for e in read_manifest(out) if e["id"] == "1")
    assert entry["bytes"] >= size and entry["store"]["checksum"].endswith(
        f"-{-(-entry['bytes'] // (8 * MB))}"
    )
    head = seaweed.client().head_object(
        Bucket=bucket, Key=f"2026-12/{entry['file']}", ChecksumMode="ENABLED"
    )
    assert (
        head["ContentLength"] == entry["bytes"]
        and head["ChecksumSHA256"] == entry["store"]["checksum"]
    )
    checked = cli(["verify", str(out), "--deep"], None, seaweed.env(), timeout=200)
    assert checked.returncode == 0, checked.stdout


def test_the_s3_extra_is_named_when_it_is_missing(tmp_path: Path) -> None:
    """Without aiobotocore, --to says which extra to install (no traceback)."""
    blocker = "import sys; sys.modules['aiobotocore'] = None; import runpy; sys.argv[0] = 'batch-export'; runpy.run_module('batch_export', run_name='__main__', alter_sys=True)"
    ids = write_ids(tmp_path / "ids.csv", [1])
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            blocker,
            "run",
            str(ids),
            "--out",
            str(tmp_path / "s"),
            "--to",
            "s3://bucket-x/p",
            "--simulate",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'batch-export[s3]'" in done.stderr and "Traceback" not in done.stderr


def test_push_mode_gzip_status_and_resume_work_the_same_into_a_bucket(
    seaweed: Seaweed, simulator: StartSimulator, tmp_path: Path
) -> None:
    """Pushed, gzip'd exports land in the bucket; status reads the state; a rerun uploads nothing."""
    sim = simulator(prepare_delay="0.1:0.3", export_size=4_000)
    bucket = new_bucket(seaweed, lock=False)
    ids = write_ids(tmp_path / "ids.csv", range(1, 31))
    out = tmp_path / "state"
    push = ["--push-listen", "127.0.0.1:0", "--push-grace", "30", "--gzip"]
    args = ["run", str(ids), "--out", str(out), *s3_args(seaweed, bucket), *push]
    done = run(seaweed, sim, args)
    assert done.returncode == 0, done.stderr
    assert sim.stats()["webhooks"]["sent"] == 30
    entries = assert_bucket_matches_manifest(seaweed, bucket, "2026-12", out, compressed=True)
    assert all(e["file"].endswith(".json.gz") and e["compressed"] == "gzip" for e in entries)

    status = cli(["status", str(out), "--json"], None, seaweed.env())
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["done"] == 30

    posts_before = sim.stats()["requests"].get("POST datarequest", 0)
    again = run(seaweed, sim, args)
    assert again.returncode == 0, again.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["s3_puts"] == 0 and summary["s3_multipart"] == 0  # every object found intact
    assert sim.stats()["requests"].get("POST datarequest", 0) == posts_before
    assert_bucket_matches_manifest(seaweed, bucket, "2026-12", out, compressed=True)


def test_a_whole_run_against_the_mixed_wire_lands_in_the_bucket_exactly(
    seaweed: Seaweed, simulator: StartSimulator, tmp_path: Path
) -> None:
    """Every platform variant at random (placeholders, throttles, outages, v4) into a locked bucket."""
    sim = simulator(
        wire="mixed",
        prepare_delay="1:4",
        rate_limit=60,
        burst=10,
        outage_every=6.0,
        outage_seconds=1.5,
        seed=12,
        export_sizes={"17": 9 * MB},
    )
    bucket = new_bucket(seaweed, lock=True)
    ids = write_ids(tmp_path / "ids.csv", range(1, 121))
    out = tmp_path / "state"
    args = ["run", str(ids), "--out", str(out), *s3_args(seaweed, bucket), "--retention-days", "1"]
    # A small window, so checks are not queued behind the POSTs and some meet the placeholder.
    args += [*api_args(sim, version=4), "--max-pending", "20", "--no-progress"]
    done = cli(args, sim.token, seaweed.env(), timeout=240)
    assert done.returncode == 0, done.stderr
    entries = assert_bucket_matches_manifest(seaweed, bucket, "2026-12", out)
    assert len(entries) == 120
    met = {name for name, count in sim.stats()["wire"].items() if count}
    assert "outage" in met and met & {"placeholder-bare", "placeholder-info"}, met
    assert uploads_left(seaweed, bucket) == []
