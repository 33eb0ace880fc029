"""With an S3 destination, the run is reported finished only once its evidence is in the bucket.

The child runs the real CLI with a log handler that, as the end event is
logged, lists the bucket from outside (botocore): what an auditor acting on
the event would find there.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from batch_export.errors import StorageError
from batch_export.run.events import EVENTS_LOGGER, end_after_publishing

from .conftest import StartSimulator, api_args, write_ids
from .seaweed import Seaweed
from .test_s3_export import cli, new_bucket, s3_args

#: ``python -c`` child: ``BUCKET PREFIX ENDPOINT CLI-ARGS…``; prints the keys there at the end event
_CHILD = """
import json, logging, sys
import botocore.session
from botocore.config import Config

bucket, prefix, endpoint = sys.argv[1:4]
del sys.argv[1:4]

class AtTheEnd(logging.Handler):
    def emit(self, record):
        event = getattr(record, "fields", {}).get("event")
        if event not in ("run_finished", "run_stopped"):
            return
        client = botocore.session.get_session().create_client(
            "s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"})
        )
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
        keys = sorted(item["Key"][len(prefix) + 1 :] for item in listed.get("Contents", []))
        print("at " + event + " " + json.dumps(keys), flush=True)

logging.getLogger("batch_export.events").addHandler(AtTheEnd())
from batch_export.cli import main
sys.argv[0] = "batch-export"
main()
"""


def test_run_finished_is_logged_after_the_evidence_is_uploaded(
    seaweed: Seaweed, simulator: StartSimulator, tmp_path: Path
) -> None:
    """At ``run_finished`` the bucket holds the manifest, the summary, the run log and the seal."""
    sim = simulator()
    bucket = new_bucket(seaweed, lock=False)
    ids = write_ids(tmp_path / "ids.csv", range(1, 6))
    args = ["run", str(ids), "--out", str(tmp_path / "out"), *s3_args(seaweed, bucket)]
    proc = cli(
        [*args, *api_args(sim), "--no-progress"],
        sim.token,
        seaweed.env(),
        python_args=("-c", _CHILD, bucket, "2026-12", seaweed.endpoint),
    )
    assert proc.returncode == 0, proc.stderr
    ends = [line for line in proc.stdout.splitlines() if line.startswith("at run_")]
    assert len(ends) == 1, proc.stdout + proc.stderr
    event, keys = ends[0].split(" ", 2)[1:]
    assert event == "run_finished"
    listed = set(json.loads(keys))
    assert {"manifest.jsonl", "summary.json", "runs.jsonl", "seals/000001.json"} <= listed, listed


def _summary() -> dict[str, object]:
    counts = {"total": 5, "done": 5, "failed": 0, "invalid": 0, "pending": 0}
    return {"run": 1, "counts": counts, "exit_code": 0, "elapsed_seconds": 1.0}


def test_a_failed_upload_ends_the_run_as_stopped_by_it(caplog: pytest.LogCaptureFixture) -> None:
    """The upload's error is the end event's (with its exit code), and it still goes up."""

    async def failing() -> None:
        raise StorageError("the bucket refused the seal")

    with caplog.at_level(logging.INFO, EVENTS_LOGGER), pytest.raises(StorageError):
        asyncio.run(end_after_publishing(failing(), _summary()))
    (record,) = [r for r in caplog.records if r.name == EVENTS_LOGGER]
    fields = getattr(record, "fields")  # noqa: B009 (set through ``extra``)
    assert fields["event"] == "run_stopped"
    assert fields["error"] == "the bucket refused the seal"
    assert fields["exit_code"] == StorageError("x").exit_code != 0


def test_nothing_to_publish_ends_the_run_as_its_summary_says(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``None`` (a cancelled run publishes nothing): the end event at once, from the summary."""
    with caplog.at_level(logging.INFO, EVENTS_LOGGER):
        asyncio.run(end_after_publishing(None, _summary()))
    (record,) = [r for r in caplog.records if r.name == EVENTS_LOGGER]
    assert getattr(record, "fields")["event"] == "run_finished"  # noqa: B009
