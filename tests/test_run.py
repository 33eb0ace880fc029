"""End-to-end runs of ``batch-export run`` against the simulator over HTTP."""

from __future__ import annotations

import gc
import hashlib
import json
import stat
from pathlib import Path

import pytest

from batch_export.platform.limits import RateLimiter
from batch_export.run.target import GC_YOUNG_THRESHOLD, _fewer_collections

from .conftest import (
    SAMPLES,
    StartSimulator,
    api_args,
    read_manifest,
    run_cli,
    run_subprocess,
    write_ids,
)

MANIFEST_KEYS = {
    "kind",
    "id",
    "status",
    "request_id",
    "file",
    "bytes",
    "sha256",
    "attempts",
    "error",
}


def assert_files_verify(out_dir: Path, entries: list[dict[str, object]]) -> None:
    """Every done entry's file exists, re-hashes to its sha256 and is a JSON export."""
    for entry in entries:
        if entry["status"] != "done":
            continue
        path = out_dir / str(entry["file"])
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
        doc = json.loads(data)
        assert doc["info"]["type"] == entry["kind"]
        assert str(doc["info"]["id"]).lower() == str(entry["id"]).lower()
        assert isinstance(doc["data"], list)


def test_sample_profiles_end_to_end(simulator: StartSimulator, tmp_path: Path) -> None:
    """300 sample profiles all end done, each file byte-identical to what the platform serves."""
    sim = simulator()
    out = tmp_path / "out"
    result = run_cli(
        ["run", str(SAMPLES / "profiles.csv"), "--out", str(out), *api_args(sim)], sim.token
    )
    assert result.exit_code == 0, result.stderr
    entries = read_manifest(out)
    assert len(entries) == 300
    assert all(set(e) >= MANIFEST_KEYS for e in entries)
    assert {e["status"] for e in entries} == {"done"}
    assert len({e["file"] for e in entries}) == 300
    assert_files_verify(out, entries)
    # The simulator's own hash of what it served equals ours, for a sample.
    for entry in entries[:5]:
        served = sim.get(f"/_sim/datarequest/{entry['request_id']}")
        assert served["sha256"] == entry["sha256"]
    stats = sim.stats()
    assert all(count == 1 for count in stats["posts_per_target"].values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["done"] == 300
    assert summary["exit_code"] == 0
    # Every small export's fsync + rename went through the batcher, never more trips than files.
    assert 1 <= summary["file_commit_trips"] <= 300
    assert summary["journal_fsyncs"] >= 1


def test_outputs_are_owner_only(simulator: StartSimulator, tmp_path: Path) -> None:
    """Export files and the manifest are 0600 and directories 0700, whatever the umask."""
    import os

    sim = simulator()
    out = tmp_path / "out"
    old = os.umask(0)
    try:
        result = run_cli(
            [
                "run",
                str(write_ids(tmp_path / "ids.csv", [5, 6])),
                "--out",
                str(out),
                *api_args(sim),
            ],
            sim.token,
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.stderr
    for path in [out, *out.rglob("*")]:
        if path.name == ".lock":
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


@pytest.mark.parametrize(
    ("kind", "csv_name"),
    [("subprofile", "subprofiles.csv"), ("email", "emails.csv")],
)
def test_other_kinds(simulator: StartSimulator, tmp_path: Path, kind: str, csv_name: str) -> None:
    """Subprofile and email targets export end to end with matching info."""
    sim = simulator()
    out = tmp_path / "out"
    result = run_cli(
        ["run", str(SAMPLES / csv_name), "--kind", kind, "--out", str(out), *api_args(sim)],
        sim.token,
    )
    assert result.exit_code == 0, result.stderr
    entries = read_manifest(out)
    assert entries and {e["kind"] for e in entries} == {kind}
    assert {e["status"] for e in entries} == {"done"}
    assert_files_verify(out, entries)


@pytest.mark.parametrize("version", [2, 3, 4])
def test_api_versions(simulator: StartSimulator, tmp_path: Path, version: int) -> None:
    """v2/v3 (query token) and v4 (bearer JWT, refreshed when it lapses) both work."""
    sim = simulator(jwt_lifetime=1.0, prepare_delay="0.3:0.8")
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", range(1, 61))
    result = run_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim, version), "--rate", "40"], sim.token
    )
    assert result.exit_code == 0, result.stderr
    assert {e["status"] for e in read_manifest(out)} == {"done"}
    stats = sim.stats()
    if version == 4:
        # 60 targets at 40 req/s take well over the 1 s JWT lifetime: renewed, never rejected.
        assert stats["requests"]["POST authenticate"] >= 2
        assert stats["responses"].get("401", 0) == 0
    else:
        assert stats["requests"].get("POST authenticate", 0) == 0


def test_resume_after_clean_finish_sends_nothing_new(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """Rerunning a finished export asks the platform for nothing and exits 0."""
    sim = simulator()
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", range(100, 140))
    args = ["run", str(ids), "--out", str(out), *api_args(sim)]
    assert run_cli(args, sim.token).exit_code == 0
    before = sim.stats()["requests_total"]
    first = read_manifest(out)
    again = run_cli(args, sim.token)
    assert again.exit_code == 0, again.stderr
    assert sim.stats()["requests_total"] == before
    assert read_manifest(out) == first


def test_resume_reexports_a_deleted_file(simulator: StartSimulator, tmp_path: Path) -> None:
    """A done target whose file vanished is exported again on the next run."""
    sim = simulator()
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", [7, 8, 9])
    args = ["run", str(ids), "--out", str(out), *api_args(sim)]
    assert run_cli(args, sim.token).exit_code == 0
    victim = next(e for e in read_manifest(out) if e["id"] == "8")
    (out / victim["file"]).unlink()
    assert run_cli(args, sim.token).exit_code == 0
    assert sim.stats()["posts_per_target"]["profile:8"] == 2
    assert sim.stats()["posts_per_target"]["profile:7"] == 1
    assert_files_verify(out, read_manifest(out))


def test_exit_code_1_with_failed_and_invalid(simulator: StartSimulator, tmp_path: Path) -> None:
    """Unknown profiles fail, bad rows are invalid, the rest is done, and the exit code is 1."""
    sim = simulator(missing_ids=frozenset({"13"}))
    out = tmp_path / "out"
    csv = tmp_path / "ids.csv"
    csv.write_text("profile_id\n11\n12\n13\nabc\n12\n", encoding="utf-8")
    result = run_cli(["run", str(csv), "--out", str(out), *api_args(sim)], sim.token)
    assert result.exit_code == 1
    by_id = {e["id"]: e for e in read_manifest(out)}
    assert len(by_id) == 4  # the duplicate 12 collapsed
    assert by_id["11"]["status"] == by_id["12"]["status"] == "done"
    assert by_id["13"]["status"] == "failed" and "404" in by_id["13"]["error"]
    assert by_id["abc"]["status"] == "invalid" and "line 5" in by_id["abc"]["error"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "0"], "--rate"),
        (["--concurrency", "-1"], "--concurrency"),
        (["--api-version", "7"], "--api-version"),
        (["--api-url", "api.copernica.com"], "--api-url"),
    ],
)
def test_bad_configuration_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    """Each impossible setting is a one-line message and exit code 2, no traceback."""
    ids = write_ids(tmp_path / "ids.csv", [1])
    result = run_cli(["run", str(ids), "--out", str(tmp_path / "out"), *args], "token-x")
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_token_exits_2(tmp_path: Path) -> None:
    """Without a token the run refuses to start and says where the token goes."""
    ids = write_ids(tmp_path / "ids.csv", [1])
    result = run_cli(["run", str(ids), "--out", str(tmp_path / "out")], None)
    assert result.exit_code == 2
    assert "COPERNICA_ACCESS_TOKEN" in result.stderr


@pytest.mark.parametrize(
    ("version", "message"), [(2, "rejected the credentials"), (4, "refused the access token")]
)
def test_rejected_token_exits_2(
    simulator: StartSimulator, tmp_path: Path, version: int, message: str
) -> None:
    """A token the platform (v2) or its auth endpoint (v4) rejects stops the run with exit 2."""
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", [1, 2, 3])
    result = run_cli(
        ["run", str(ids), "--out", str(tmp_path / "out"), *api_args(sim, version)], "wrong-token"
    )
    assert result.exit_code == 2
    assert message in result.stderr
    assert "wrong-token" not in result.stderr + result.stdout


def test_report_is_passed_to_the_platform(simulator: StartSimulator, tmp_path: Path) -> None:
    """--report reaches the platform with every data request."""
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", [1, 2])
    result = run_cli(
        [
            "run",
            str(ids),
            "--out",
            str(tmp_path / "out"),
            *api_args(sim),
            "--report",
            "dpo@example.nl",
        ],
        sim.token,
    )
    assert result.exit_code == 0, result.stderr
    assert sim.stats()["reports"]["email"] == ["dpo@example.nl", "dpo@example.nl"]


def test_messy_real_world_export(simulator: StartSimulator, tmp_path: Path) -> None:
    """The messy sample (BOM, semicolons, CRLF, quotes, junk rows) exports its valid IDs."""
    sim = simulator()
    out = tmp_path / "out"
    result = run_cli(
        ["run", str(SAMPLES / "messy_export.csv"), "--out", str(out), *api_args(sim)], sim.token
    )
    assert result.exit_code == 1  # the junk rows are invalid
    entries = read_manifest(out)
    statuses = {e["status"] for e in entries}
    assert statuses == {"done", "invalid"}
    assert len([e for e in entries if e["status"] == "done"]) == 6
    assert all("line" in e["error"] for e in entries if e["status"] == "invalid")


def test_a_jwt_is_taken_after_the_request_waited_its_turn(
    simulator: StartSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests spaced at the wire long after their slot still carry a JWT that is valid.

    Spacing of 0.2 s at the wire (``wire_spacing`` 8 at 40/s) makes submits
    queue in ``sending`` for longer than a 1 s JWT's 0.1 s renewal margin: a
    header taken before that wait would reach the platform expired (a 401).
    """
    monkeypatch.setattr(RateLimiter, "wire_spacing", 8.0)
    sim = simulator(jwt_lifetime=1.0, prepare_delay="0")
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", range(1, 13))
    result = run_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim, 4), "--rate", "40"], sim.token
    )
    assert result.exit_code == 0, result.stderr
    stats = sim.stats()
    assert stats["requests"]["POST authenticate"] >= 3  # the run outlived several JWTs
    assert stats["responses"].get("401", 0) == 0


def test_rate_ceiling_is_honoured(simulator: StartSimulator, tmp_path: Path) -> None:
    """With --rate 25 the simulator sees 25 requests a second on average, in bursts of at most 4.

    Two bounds, robust to arrival jitter (the simulator shares this process's
    GIL, so under load requests sent on schedule can arrive bunched):
    - the whole run's requests span at least (n - burst) / 25 seconds, less
      0.2 s of jitter at its two ends: a client pacing at 30/s fails that;
    - no second holds more than the wire's own ceiling: requests released
      together (by one journal commit) leave ``wire_spacing / rate`` apart,
      i.e. at a third over the pace, plus the burst.
    """
    sim = simulator(prepare_delay="0.1:0.4")
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", range(1, 81))
    result = run_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim), "--rate", "25"], sim.token
    )
    assert result.exit_code == 0, result.stderr
    times = sorted(entry[0] for entry in sim.get("/_sim/log") if not str(entry[2]).startswith("_"))
    assert len(times) >= 160
    burst = 4
    assert times[-1] - times[0] >= (len(times) - burst) / 25 - 0.2
    worst = max(sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times))
    assert worst <= 25 / RateLimiter.wire_spacing + burst + 2  # + 2 for jitter


def test_subprocess_run_and_json_summary(simulator: StartSimulator, tmp_path: Path) -> None:
    """As a real process: exit 0, the JSON summary on stdout, progress and logs on stderr only."""
    sim = simulator()
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", range(500, 530))
    proc = run_subprocess(["run", str(ids), "--out", str(out), *api_args(sim), "--json"], sim.token)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["counts"]["done"] == 30
    assert "done" in proc.stderr
    assert len(read_manifest(out)) == 30


def test_stdin_input(simulator: StartSimulator, tmp_path: Path) -> None:
    """INPUT may be '-' for standard input."""
    from click.testing import CliRunner

    from batch_export.cli import cli

    sim = simulator()
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["run", "-", "--out", str(out), *api_args(sim)],
        input="profile_id\n1\n2\n",
        env={"COPERNICA_ACCESS_TOKEN": sim.token},
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(e["id"] for e in read_manifest(out)) == ["1", "2"]


def test_young_collections_are_rarer_during_the_pipeline_only() -> None:
    """The pipeline raises the young generation's threshold and puts the caller's back, even on error."""
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with _fewer_collections():
            assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
        assert gc.get_threshold() == (700, 10, 10)
        with pytest.raises(RuntimeError), _fewer_collections():
            raise RuntimeError("a failed run")
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(50_000, 5, 5)  # a caller's higher threshold is never lowered
        with _fewer_collections():
            assert gc.get_threshold() == (50_000, 5, 5)
        gc.set_threshold(0, 5, 5)  # nor is collection switched back on
        with _fewer_collections():
            assert gc.get_threshold() == (0, 5, 5)
    finally:
        gc.set_threshold(*saved)


def test_a_run_leaves_the_collector_thresholds_as_it_found_them(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """``batch-export run`` in-process: the raised threshold does not outlive the run."""
    before = gc.get_threshold()
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", ["1", "2", "3"])
    result = run_cli(["run", str(ids), "--out", str(tmp_path / "out"), *api_args(sim)], sim.token)
    assert result.exit_code == 0, result.stderr
    assert gc.get_threshold() == before
