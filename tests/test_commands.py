"""The operator commands: status, verify, ids, --gzip, help texts."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from batch_export.cli import cli

from .conftest import (
    SimThread,
    StartSimulator,
    api_args,
    read_manifest,
    run_cli,
    spawn_cli,
    write_ids,
)


def test_every_command_help_has_an_example() -> None:
    """`--help` of the group and of every subcommand shows at least one example."""
    runner = CliRunner()
    for args in [[], *([name] for name in cli.commands)]:
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Example" in result.output, args
        assert "batch-export" in result.output, args


def test_version_option() -> None:
    """--version prints the tool's version."""
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert "batch-export" in result.output


def _export(sim: SimThread, tmp_path: Path, ids: Sequence[object], *extra: str) -> Path:
    out = tmp_path / "out"
    result = run_cli(
        [
            "run",
            str(write_ids(tmp_path / "ids.csv", ids)),
            "--out",
            str(out),
            *api_args(sim),
            *extra,
        ],
        sim.token,
    )
    assert result.exit_code == 0, result.stderr
    return out


def test_verify_passes_on_a_clean_export(simulator: StartSimulator, tmp_path: Path) -> None:
    """verify exits 0 and counts every file of an untouched export."""
    out = _export(simulator(), tmp_path, range(1, 11))
    result = run_cli(["verify", str(out), "--json"], None)
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["ok"] and report["verified"] == 10 and report["problems"] == []


def test_verify_catches_tampered_missing_and_truncated(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """A changed byte, a deleted file and a truncated gzip are each reported, exit 1."""
    out = _export(simulator(), tmp_path, range(1, 6), "--gzip")
    entries = read_manifest(out)
    assert all(e["compressed"] == "gzip" and e["file"].endswith(".json.gz") for e in entries)
    assert run_cli(["verify", str(out)], None).exit_code == 0
    tampered, missing, truncated = (out / e["file"] for e in entries[:3])
    data = bytearray(tampered.read_bytes())
    data[-12] ^= 0xFF
    tampered.write_bytes(bytes(data))
    missing.unlink()
    truncated.write_bytes(truncated.read_bytes()[:-20])
    result = run_cli(["verify", str(out), "--json"], None)
    assert result.exit_code == 1
    problems = {p["id"]: p["problem"] for p in json.loads(result.stdout)["problems"]}
    assert set(problems) == {entries[0]["id"], entries[1]["id"], entries[2]["id"]}
    assert "missing" in problems[entries[1]["id"]]
    assert "size" in problems[entries[2]["id"]] or "truncated" in problems[entries[2]["id"]]


def test_verify_on_a_non_export_directory_exits_2(tmp_path: Path) -> None:
    """verify on a directory without a manifest says so and exits 2."""
    result = run_cli(["verify", str(tmp_path)], None)
    assert result.exit_code == 2
    assert "manifest" in result.stderr


def test_gzip_files_decompress_to_the_served_export(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """--gzip stores exactly the served bytes, compressed."""
    import gzip
    import hashlib

    sim = simulator()
    out = _export(sim, tmp_path, [3], "--gzip")
    entry = read_manifest(out)[0]
    raw = gzip.decompress((out / entry["file"]).read_bytes())
    served = sim.get(f"/_sim/datarequest/{entry['request_id']}")
    assert hashlib.sha256(raw).hexdigest() == served["sha256"]


@pytest.mark.parametrize("wrapped", [False, True])
def test_ids_pages_through_a_database(
    simulator: StartSimulator, tmp_path: Path, wrapped: bool
) -> None:
    """ids walks 1000-ID pages to the end of a 2345-profile database; run accepts the CSV."""
    sim = simulator(databases={"42": 2345}, wrap_id_lists=wrapped)
    target = tmp_path / "all.csv"
    result = run_cli(["ids", "--database", "42", "-o", str(target), *api_args(sim)[:2]], sim.token)
    assert result.exit_code == 0, result.stderr
    lines = target.read_text().splitlines()
    assert lines[0] == "profile_id"
    assert len(lines) - 1 == len(set(lines[1:])) == 2345
    assert sim.stats()["requests"]["GET profileids"] == 3


def test_ids_for_a_collection_to_stdout(simulator: StartSimulator, tmp_path: Path) -> None:
    """ids --collection lists subprofile IDs (unpaged) to stdout."""
    sim = simulator(collections={"7": 25})
    result = run_cli(["ids", "--collection", "7", *api_args(sim)[:2]], sim.token)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "subprofile_id" and len(lines) == 26


def test_ids_unknown_database_exits_2(simulator: StartSimulator) -> None:
    """An unknown database is a clear error, exit 2."""
    sim = simulator()
    result = run_cli(["ids", "--database", "999", *api_args(sim)[:2]], sim.token)
    assert result.exit_code == 2
    assert "404" in result.stderr


def test_ids_needs_exactly_one_source() -> None:
    """ids without --database/--collection (or with both) is a usage error."""
    assert run_cli(["ids"], "t").exit_code == 2
    assert run_cli(["ids", "--database", "1", "--collection", "2"], "t").exit_code == 2


def test_sigterm_exit_code(simulator: StartSimulator, tmp_path: Path) -> None:
    """SIGTERM stops a run with exit 143."""
    sim = simulator(prepare_delay="2:3")
    ids = write_ids(tmp_path / "ids.csv", range(1, 50))
    out = tmp_path / "out"
    proc = spawn_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim)],
        sim.token,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (out / "journal.jsonl").exists():
        time.sleep(0.02)
    while time.monotonic() < deadline and (out / "journal.jsonl").stat().st_size < 2000:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr


def test_ids_failure_leaves_no_partial_csv(simulator: StartSimulator, tmp_path: Path) -> None:
    """A listing that fails midway leaves no CSV behind that could pass for a complete one."""
    sim = simulator()
    target = tmp_path / "ids.csv"
    result = run_cli(["ids", "--database", "404", "-o", str(target), *api_args(sim)[:2]], sim.token)
    assert result.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_json_log_format_for_errors_and_summary(simulator: StartSimulator, tmp_path: Path) -> None:
    """With --log-format json, warnings, errors and the end-of-run line are JSON records."""
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", [1, 2])
    ok = run_cli(
        ["run", str(ids), "--out", str(tmp_path / "o"), *api_args(sim), "--log-format", "json"],
        sim.token,
    )
    assert ok.exit_code == 0
    records = [json.loads(line) for line in ok.stderr.splitlines() if line.strip()]
    assert any("run finished" in r["message"] for r in records)
    bad = run_cli(
        ["run", str(ids), "--out", str(tmp_path / "o2"), *api_args(sim), "--log-format", "json"],
        "nope",
    )
    assert bad.exit_code == 2
    records = [json.loads(line) for line in bad.stderr.splitlines() if line.strip()]
    assert records[-1]["level"] == "error" and "credentials" in records[-1]["message"]
