"""Evidence an auditor can check: seals, the journal's hash chain, signatures, verify's proof.

One signed archive is built per module with the real CLI against the
simulator (two runs with different inputs, one target failing), then each
tampering case works on its own copy and must be caught by ``verify`` with
exit 1, while the untouched copy proves out with exit 0.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from batch_export.evidence.seal import canonical, leaf_hash, merkle_root
from batch_export.evidence.signing import key_id
from batch_export.simulator import SimulatorConfig

from .conftest import SimThread, api_args, read_manifest, run_cli, write_ids

FIRST_IDS = list(range(2001, 2031))
SECOND_IDS = [*range(2021, 2031), *range(2031, 2036)]  # 10 overlap, 5 new; 2001-2020 left out
MISSING = "2033"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    """One simulator for the module's archives."""
    thread = SimThread(
        SimulatorConfig(
            prepare_delay="0.02:0.1", export_size=1_500, missing_ids=frozenset({MISSING})
        )
    )
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A key pair made by ``batch-export keygen``."""
    directory = tmp_path_factory.mktemp("keys") / "keys"
    outcome = run_cli(["keygen", str(directory)], None)
    assert outcome.exit_code == 0, outcome.stderr
    return directory / "signing.key", directory / "signing.pub"


@pytest.fixture(scope="module")
def archive(
    sim: SimThread, keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A signed archive of two runs: the second input leaves 20 exported targets out."""
    base = tmp_path_factory.mktemp("archive")
    out = base / "archive"
    for number, ids in enumerate((FIRST_IDS, SECOND_IDS), start=1):
        csv = write_ids(base / f"input{number}.csv", ids)
        outcome = run_cli(
            ["run", str(csv), "--out", str(out), "--sign-key", str(keys[0]), *api_args(sim)],
            sim.token,
        )
        # MISSING is in the second input only, and fails there
        assert outcome.exit_code == number - 1, outcome.stderr
    return out


@pytest.fixture
def copy(archive: Path, tmp_path: Path) -> Path:
    """A private copy of the archive to tamper with."""
    target = tmp_path / "copy"
    shutil.copytree(archive, target)
    return target


def verify(out: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """``batch-export verify OUT --json ARGS``: the exit code and the report."""
    outcome = run_cli(["verify", str(out), "--json", *args], None)
    report = json.loads(outcome.stdout) if outcome.stdout.strip() else {}
    return outcome.exit_code, report


def checks(report: dict[str, Any]) -> set[str]:
    return {problem["check"] for problem in report["problems"]}


def done_entries(out: Path) -> list[dict[str, Any]]:
    return [entry for entry in read_manifest(out) if entry["status"] == "done"]


# -- what the archive records ---------------------------------------------------


def test_the_untouched_archive_proves_out_with_its_key(
    archive: Path, keys: tuple[Path, Path]
) -> None:
    """verify --key on an untouched signed archive: exit 0, two seals, chain and signatures valid."""
    code, report = verify(archive, "--key", str(keys[1]))
    assert code == 0, report["problems"]
    assert report["seals"] == {
        "count": 2,
        "latest": "seals/000002.json",
        "chain": "intact",
        "signed": 2,
        "signature": "valid",
    }
    assert report["journal"]["chain"] == "intact"
    assert report["journal"]["unsealed_lines"] == 0
    manifest = (archive / "manifest.jsonl").read_bytes()
    assert report["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert report["tool_version"] and report["checked_at"].endswith("Z")


def test_the_manifest_keeps_targets_a_later_input_left_out(archive: Path) -> None:
    """After a rerun with another CSV, every exported target stays in the manifest, with its run."""
    entries = {entry["id"]: entry for entry in read_manifest(archive)}
    done = {target for target, entry in entries.items() if entry["status"] == "done"}
    assert done == {str(i) for i in [*FIRST_IDS, *SECOND_IDS]} - {MISSING}
    assert entries[MISSING]["status"] == "failed"
    assert entries["2001"]["run"] == 1 and entries["2031"]["run"] == 2
    for entry in entries.values():
        if entry["status"] == "done":
            assert entry["submitted_at"] <= entry["saved_at"]
            assert entry["saved_at"].endswith("Z")
    files = {str(path.relative_to(archive)) for path in (archive / "exports").rglob("*.json")}
    assert files == {entry["file"] for entry in entries.values() if entry["status"] == "done"}


def test_each_run_records_its_input(archive: Path) -> None:
    """runs.jsonl, summary.json and the journal's run lines carry each run's input: path, size, sha256, rows, targets."""
    runs = [json.loads(line) for line in (archive / "runs.jsonl").read_text().splitlines()]
    assert [run["run"] for run in runs] == [1, 2]
    second = archive.parent / "input2.csv"
    expected = {
        "path": str(second),
        "size": second.stat().st_size,
        "sha256": hashlib.sha256(second.read_bytes()).hexdigest(),
        "rows": len(SECOND_IDS),
        "targets": len(SECOND_IDS),
    }
    assert runs[1]["input"] == expected
    assert json.loads((archive / "summary.json").read_text())["input"] == expected
    assert runs[1]["archive"] == {
        "done": 34,
        "bytes": runs[1]["archive"]["bytes"],
        "not_in_input": 20,
    }
    journal_runs = [
        json.loads(line)
        for line in (archive / "journal.jsonl").read_text().splitlines()
        if '"ev":"run"' in line
    ]
    assert [run["input"]["sha256"] for run in journal_runs] == [
        hashlib.sha256((archive.parent / "input1.csv").read_bytes()).hexdigest(),
        expected["sha256"],
    ]


def test_a_run_says_when_its_input_leaves_exported_targets_out(
    sim: SimThread, archive: Path, tmp_path: Path
) -> None:
    """A run whose input leaves out exported targets says so in one line, and they stay."""
    out = tmp_path / "copy"
    shutil.copytree(archive, out)
    csv = write_ids(tmp_path / "few.csv", [2001, 2002])
    outcome = run_cli(["run", str(csv), "--out", str(out), *api_args(sim)], sim.token)
    assert outcome.exit_code == 0, outcome.stderr
    assert "32 exported targets are not in this input; they stay in the archive" in outcome.stderr
    assert len(done_entries(out)) == 34


def test_the_seal_pins_the_files_and_the_merkle_root(archive: Path) -> None:
    """The latest seal's hashes, counts and Merkle root are those of the files on disk."""
    seal = json.loads((archive / "seals/000002.json").read_text())
    for name in ("manifest.jsonl", "summary.json", "runs.jsonl"):
        data = (archive / name).read_bytes()
        assert seal["files"][name] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
    entries = sorted(done_entries(archive), key=lambda entry: (entry["kind"], entry["id"]))
    leaves = [leaf_hash(e["kind"], e["id"], e["sha256"], e["bytes"]) for e in entries]
    assert seal["exports"]["merkle_root"] == merkle_root(leaves)
    assert seal["counts"]["done"] == 34 and seal["counts"]["failed"] == 1
    first = (archive / "seals/000001.json").read_bytes()
    assert seal["previous"] == {"seal": 1, "sha256": hashlib.sha256(first).hexdigest()}
    assert seal["input"]["targets"] == len(SECOND_IDS)


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962's recursive definition, written independently of merkle_root."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    left, right = _reference_root(leaves[:split]), _reference_root(leaves[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40))
def test_merkle_root_is_rfc6962s(leaves: list[bytes]) -> None:
    """The bottom-up tree equals RFC 6962's recursive Merkle tree hash for any number of leaves."""
    assert merkle_root(leaves) == _reference_root(leaves).hex()


# -- tampering ------------------------------------------------------------------


def test_a_changed_export_is_caught(copy: Path, keys: tuple[Path, Path]) -> None:
    """One byte of one export changed: exit 1, the export named."""
    entry = done_entries(copy)[0]
    path = copy / entry["file"]
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))
    code, report = verify(copy, "--key", str(keys[1]))
    assert code == 1
    assert [p["file"] for p in report["problems"] if p["check"] == "export"] == [entry["file"]]


def test_a_file_changed_with_its_manifest_line_is_caught(
    copy: Path, keys: tuple[Path, Path]
) -> None:
    """An export and its manifest line rewritten together: the manifest no longer matches the seal."""
    entry = done_entries(copy)[0]
    path = copy / entry["file"]
    document = json.loads(path.read_bytes())
    document["data"] = []
    body = json.dumps(document).encode()
    path.write_bytes(body)
    lines = (copy / "manifest.jsonl").read_text().splitlines()
    rewritten = []
    for line in lines:
        item = json.loads(line)
        if item["id"] == entry["id"]:
            item.update(bytes=len(body), sha256=hashlib.sha256(body).hexdigest())
            line = json.dumps(item, ensure_ascii=False)
        rewritten.append(line + "\n")
    (copy / "manifest.jsonl").write_text("".join(rewritten))
    code, report = verify(copy, "--key", str(keys[1]))
    assert code == 1
    assert checks(report) == {"manifest"}
    assert any(p["file"] == "manifest.jsonl" for p in report["problems"])


def test_a_removed_manifest_line_is_caught(copy: Path) -> None:
    """A done line dropped from the manifest: seal mismatch, and its export is an unknown file."""
    lines = (copy / "manifest.jsonl").read_text().splitlines(keepends=True)
    removed = json.loads(lines[3])
    (copy / "manifest.jsonl").write_text("".join(lines[:3] + lines[4:]))
    code, report = verify(copy)
    assert code == 1
    assert {"manifest", "unknown-file"} <= checks(report)
    assert report["unknown_files"] == [removed["file"]]


def test_an_unlisted_file_is_caught(copy: Path) -> None:
    """A file under exports/ that no manifest line names is reported, even a valid-looking one."""
    entry = done_entries(copy)[0]
    extra = copy / "exports/profile/000/9999.json"
    extra.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(copy / entry["file"], extra)
    code, report = verify(copy)
    assert code == 1
    assert report["unknown_files"] == ["exports/profile/000/9999.json"]
    assert checks(report) == {"unknown-file"}


def test_a_removed_latest_seal_is_caught(copy: Path) -> None:
    """The latest seal deleted: the journal line that names it shows, and seal 1 no longer matches."""
    (copy / "seals/000002.json").unlink()
    code, report = verify(copy)
    assert code == 1
    assert any("names seal 2, which is missing" in p["problem"] for p in report["problems"])


def test_a_removed_first_seal_is_caught(copy: Path) -> None:
    """Seal 1 deleted: the chain has a gap."""
    (copy / "seals/000001.json").unlink()
    code, report = verify(copy)
    assert code == 1
    assert report["seals"]["chain"] == "broken"
    assert any("seal 1 before it is missing" in p["problem"] for p in report["problems"])


def test_an_edited_seal_is_caught_without_a_key(copy: Path) -> None:
    """Seal 1 edited: seal 2 names another hash for it, and so does its journal line."""
    path = copy / "seals/000001.json"
    seal = json.loads(path.read_text())
    seal["counts"]["done"] += 1
    path.write_text(json.dumps(seal, indent=2, sort_keys=True) + "\n")
    code, report = verify(copy)
    assert code == 1
    assert report["seals"]["chain"] == "broken"
    assert any(
        "names another SHA-256 for seals/000001.json" in p["problem"] for p in report["problems"]
    )


def test_an_edited_latest_seal_is_caught_by_its_signature(
    copy: Path, keys: tuple[Path, Path]
) -> None:
    """The latest seal and its journal line edited to agree: the signature no longer matches."""
    path = copy / "seals/000002.json"
    seal = json.loads(path.read_text())
    seal["counts"]["failed"] = 0
    text = json.dumps(seal, indent=2, sort_keys=True) + "\n"
    path.write_text(text)
    journal = copy / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    last = json.loads(lines[-1])
    assert last["ev"] == "seal"
    last["sha256"] = hashlib.sha256(text.encode()).hexdigest()
    lines[-1] = json.dumps(last, separators=(",", ":")) + "\n"
    journal.write_text("".join(lines))
    code, report = verify(copy, "--key", str(keys[1]))
    assert code == 1
    assert report["seals"]["signature"] == "invalid"
    assert any(p["check"] == "signature" for p in report["problems"])


def test_a_journal_line_edited_in_the_middle_is_caught(copy: Path) -> None:
    """One journal line in the middle changed (a done line's sha256): the chain breaks right there."""
    journal = copy / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    middle = next(n for n in range(len(lines) // 2, len(lines)) if '"ev":"done"' in lines[n])
    record = json.loads(lines[middle])
    record["sha256"] = "0" * 64
    lines[middle] = json.dumps(record, separators=(",", ":")) + "\n"
    journal.write_text("".join(lines))
    code, report = verify(copy)
    assert code == 1
    assert report["journal"]["chain"] == "broken"
    assert any(p["file"] == f"journal.jsonl line {middle + 1}" for p in report["problems"])


def test_a_journal_cut_short_is_caught(copy: Path) -> None:
    """The journal's last lines removed: the seals recorded more lines than it has."""
    journal = copy / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-5]))
    code, report = verify(copy)
    assert code == 1
    assert any("lines were removed" in p["problem"] for p in report["problems"])


def test_a_seal_signed_with_another_key_is_caught(copy: Path, keys: tuple[Path, Path]) -> None:
    """Seal 2 re-signed with a stranger's key (its content intact): not signed by a --key given."""
    path = copy / "seals/000002.json"
    seal = json.loads(path.read_text())
    stranger = Ed25519PrivateKey.generate()
    seal["signature"] = {
        "algorithm": "ed25519",
        "key_id": key_id(stranger.public_key()),
        "public_key": "",
        "value": base64.b64encode(stranger.sign(canonical(seal))).decode(),
    }
    path.write_text(json.dumps(seal, indent=2, sort_keys=True) + "\n")
    code, report = verify(copy, "--key", str(keys[1]))
    assert code == 1
    assert report["seals"]["signature"] == "invalid"
    assert any("which is not a --key given" in p["problem"] for p in report["problems"])


def test_a_signature_removed_is_caught(copy: Path, keys: tuple[Path, Path]) -> None:
    """Seal 1's signature stripped: reported as missing under --key."""
    path = copy / "seals/000001.json"
    seal = json.loads(path.read_text())
    del seal["signature"]
    path.write_text(json.dumps(seal, indent=2, sort_keys=True) + "\n")
    code, report = verify(copy, "--key", str(keys[1]))
    assert code == 1
    assert any(
        p["file"] == "seals/000001.json" and "is not signed" in p["problem"]
        for p in report["problems"]
    )


def test_require_complete_reports_targets_not_done(archive: Path) -> None:
    """--require-complete turns the failed target into a problem; without it the archive proves out."""
    assert verify(archive)[0] == 0
    code, report = verify(archive, "--require-complete")
    assert code == 1
    [problem] = report["problems"]
    assert problem["check"] == "incomplete" and problem["id"] == MISSING


def test_not_an_archive_exits_2(tmp_path: Path) -> None:
    """A directory without a journal and manifest: exit 2 with what is wrong, no traceback."""
    outcome = run_cli(["verify", str(tmp_path)], None)
    assert outcome.exit_code == 2
    assert "is it a batch-export output directory" in outcome.stderr
    assert "Traceback" not in outcome.stderr


def test_a_resume_after_a_torn_line_keeps_the_chain(
    sim: SimThread, archive: Path, tmp_path: Path
) -> None:
    """A crash's torn last line is cut by the next run, whose lines chain on: verify proves it."""
    out = tmp_path / "copy"
    shutil.copytree(archive, out)
    with (out / "journal.jsonl").open("ab") as handle:
        handle.write(b'{"ts":1,"ev":"subm')
    csv = write_ids(tmp_path / "more.csv", [*FIRST_IDS, 2040, 2041])
    outcome = run_cli(["run", str(csv), "--out", str(out), *api_args(sim)], sim.token)
    assert outcome.exit_code == 0, outcome.stderr
    code, report = verify(out)
    assert code == 0, report["problems"]
    assert report["seals"]["count"] == 3 and report["journal"]["chain"] == "intact"


# -- keys -------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    """keygen: signing.key 0600, signing.pub readable; a second keygen into the same place is refused."""
    outcome = run_cli(["keygen", str(tmp_path / "k")], None)
    assert outcome.exit_code == 0
    assert outcome.stdout.strip().startswith("ed25519:")
    assert os.stat(tmp_path / "k/signing.key").st_mode & 0o777 == 0o600
    assert b"PUBLIC KEY" in (tmp_path / "k/signing.pub").read_bytes()
    again = run_cli(["keygen", str(tmp_path / "k")], None)
    assert again.exit_code == 2 and "never replaces a key" in again.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("public", "is not a PEM private key"),
        ("readable", "can be read by other users"),
        ("missing", "does not exist"),
    ],
)
def test_a_bad_sign_key_stops_the_run_before_any_request(
    sim: SimThread, keys: tuple[Path, Path], tmp_path: Path, make: str, message: str
) -> None:
    """--sign-key that is the public key, readable by others, or missing: exit 2 and no request sent."""
    key = tmp_path / "key"
    if make == "public":
        shutil.copyfile(keys[1], key)
        key.chmod(0o600)
    elif make == "readable":
        shutil.copyfile(keys[0], key)
        key.chmod(0o644)
    before = sim.stats()["requests"]
    csv = write_ids(tmp_path / "ids.csv", [2001])
    outcome = run_cli(
        ["run", str(csv), "--out", str(tmp_path / "out"), "--sign-key", str(key), *api_args(sim)],
        sim.token,
    )
    assert outcome.exit_code == 2
    assert message in outcome.stderr
    assert sim.stats()["requests"] == before
    assert not (tmp_path / "out").exists()


def test_an_unsigned_run_on_a_signed_archive_warns_and_fails_verify_with_key(
    sim: SimThread, archive: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """A run without --sign-key on a signed archive warns; verify --key then reports its seal unsigned."""
    out = tmp_path / "copy"
    shutil.copytree(archive, out)
    csv = write_ids(tmp_path / "ids.csv", [2001])
    outcome = run_cli(["run", str(csv), "--out", str(out), *api_args(sim)], sim.token)
    assert "earlier seals" in outcome.stderr and "--sign-key" in outcome.stderr
    code, report = verify(out, "--key", str(keys[1]))
    assert code == 1
    assert [p["file"] for p in report["problems"]] == ["seals/000003.json"]
    assert report["seals"]["signature"] == "missing"


@pytest.mark.parametrize("name", ["manifest.jsonl", "journal.jsonl", "summary.json", "runs.jsonl"])
def test_a_removed_record_file_is_caught(copy: Path, name: str) -> None:
    """The manifest, the journal, the summary or the run log deleted: exit 1 (still an archive), named."""
    (copy / name).unlink()
    code, report = verify(copy)
    assert code == 1
    assert any(p["file"] == name and "missing" in p["problem"] for p in report["problems"])


def test_an_edited_summary_or_run_log_is_caught(copy: Path) -> None:
    """summary.json and runs.jsonl are pinned by the latest seal like the manifest."""
    for name in ("summary.json", "runs.jsonl"):
        path = copy / name
        path.write_text(
            path.read_text()
            .replace('"exit_code":1', '"exit_code":0')
            .replace('"exit_code": 1', '"exit_code": 0')
        )
    code, report = verify(copy)
    assert code == 1
    assert {p["file"] for p in report["problems"]} == {"summary.json", "runs.jsonl"}
