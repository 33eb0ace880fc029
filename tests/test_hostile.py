"""Secrets never leak; hostile servers, inputs and settings end in specific messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import StartSimulator, api_args, read_manifest, run_cli, write_ids

SECRET = "TOPSECRET-c0ffee-5e1f-token-4242"
JWT_SHAPE = re.compile(rb"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}")
INSTANT = {"BATCH_EXPORT_INSTANT_RETRIES": "1"}


def _everything_written(out: Path, *texts: str) -> bytes:
    blob = b"\n".join(t.encode() for t in texts)
    for path in out.rglob("*"):
        if path.is_file():
            blob += b"\n" + path.read_bytes()
    return blob


@pytest.mark.parametrize("version", [2, 4])
def test_token_and_jwt_never_written_anywhere(
    simulator: StartSimulator, tmp_path: Path, version: int
) -> None:
    """Through faults, errors and -vv debug logs, neither the token nor a JWT appears in any output."""
    sim = simulator(
        token=SECRET,
        fault_rate=0.08,
        slow_seconds=0.2,
        missing_ids=frozenset({"3"}),
        behaviours={"4": "huge-error", "5": "html-error", "6": "wrong-id"},
        jwt_lifetime=1.0,
        seed=3,
    )
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", [*range(1, 40), "bad-id"])
    result = run_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim, version), "-vv", "--json"],
        SECRET,
        **INSTANT,
    )
    assert result.exit_code == 1, result.stderr
    assert "DEBUG" in result.stderr  # the debug log really was on
    blob = _everything_written(out, result.stdout, result.stderr)
    assert SECRET.encode() not in blob
    assert not JWT_SHAPE.search(blob)


def test_redirect_to_another_host_gets_no_credentials(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """A 301 to another host is not followed: the other side receives no token."""
    elsewhere = simulator()
    sim = simulator(redirect_to=elsewhere.base_url)
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", [1, 2])
    result = run_cli(["run", str(ids), "--out", str(out), *api_args(sim)], sim.token, **INSTANT)
    assert result.exit_code == 1
    assert elsewhere.stats()["credentials_received"] == 0
    assert elsewhere.stats()["requests_total"] == 0
    for entry in read_manifest(out):
        assert entry["status"] == "failed"
        assert "redirected to another host" in entry["error"]


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("wrong-id", "does not match"),
        ("wrong-type", "is for a"),
        ("no-info", "no 'info'"),
        ("not-json", "not valid JSON"),
        ("short-body", "cut short"),
        ("no-request-id", "no usable request ID"),
        ("html-error", "an HTML page"),
        ("huge-error", "HTTP 400"),
        ("bad-request", "Invalid profile"),
        ("placeholder-ready", "no export within --timeout"),
    ],
)
def test_hostile_server_answers(
    simulator: StartSimulator, tmp_path: Path, behaviour: str, message: str
) -> None:
    """Each hostile answer fails only its target, with a specific reason; nothing bad is saved."""
    sim = simulator(behaviours={"2": behaviour})
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", [1, 2, 3])
    result = run_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim), "--timeout", "3"], sim.token, **INSTANT
    )
    assert result.exit_code == 1, result.stderr
    by_id = {e["id"]: e for e in read_manifest(out)}
    assert by_id["1"]["status"] == by_id["3"]["status"] == "done"
    bad = by_id["2"]
    assert bad["status"] == "failed"
    assert message in bad["error"]
    assert len(bad["error"]) < 500
    assert bad["file"] is None
    assert not list((out / ".partial").iterdir())
    saved = list((out / "exports").rglob("*.json"))
    assert len(saved) == 2


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("directory", "is a directory"),
        ("missing", "does not exist"),
        ("empty", "empty"),
        ("latin1", "--encoding"),
        ("no-column", "columns found"),
    ],
)
def test_unusable_input_exits_2(tmp_path: Path, setup: str, message: str) -> None:
    """An unusable input file is one specific line on stderr and exit 2."""
    path = tmp_path / "input.csv"
    if setup == "directory":
        path.mkdir()
    elif setup == "empty":
        path.write_bytes(b"")
    elif setup == "latin1":
        path.write_bytes("profile_id\n1\n2\nJos\xe9\n".encode("latin-1"))
    elif setup == "no-column":
        path.write_text("name,city\nann,delft\n", encoding="utf-8")
    result = run_cli(
        ["run", str(path), "--out", str(tmp_path / "out"), "--api-url", "http://127.0.0.1:9"],
        "t0ken",
    )
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_out_that_is_a_file_exits_2(tmp_path: Path) -> None:
    """--out pointing at a file is refused with exit 2."""
    ids = write_ids(tmp_path / "ids.csv", [1])
    target = tmp_path / "file.txt"
    target.write_text("x")
    result = run_cli(["run", str(ids), "--out", str(target)], "t0ken")
    assert result.exit_code == 2
    assert "is a file" in result.stderr


def test_insecure_and_plain_http_warn(simulator: StartSimulator, tmp_path: Path) -> None:
    """--insecure says so loudly; plain http to a non-loopback host warns about the token."""
    ids = write_ids(tmp_path / "ids.csv", [1])
    result = run_cli(
        [
            "run",
            str(ids),
            "--out",
            str(tmp_path / "out"),
            "--insecure",
            "--api-url",
            "http://192.0.2.1",
            "--rate",
            "-1",
        ],
        "t0ken",
    )
    assert result.exit_code == 2  # --rate -1 stops it before any request
    assert "--insecure" in result.stderr and "NOT verified" in result.stderr
    assert "plain http" in result.stderr
