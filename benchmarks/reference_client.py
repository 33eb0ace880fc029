"""A minimal reference client: the least work a correct exporter could do.

Plain aiohttp, one ClientSession, N targets run concurrently under a semaphore:
submit (POST /v2/profile/{id}/datarequest, read X-Created), GET the data
request until the body is no longer the placeholder, read the body into
memory and drop it. Nothing durable, no validation, no retries, no rate
limiting. Used by ``benchmarks/run.py`` (scenario ``overhead``) as the
yardstick for the exporter's CPU cost per export.

    python benchmarks/reference_client.py --base-url URL --token TOKEN \
        --csv ids.csv --concurrency 16

Prints one JSON line: {"done": n, "failed": n, "bytes": n, "requests": n}.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

PLACEHOLDER = b"Data not available (yet)"


def read_ids(path: str) -> list[str]:
    """The first column of the CSV, without its header row."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        next(rows, None)
        return [row[0] for row in rows if row]


async def export_one(
    session: aiohttp.ClientSession,
    base: str,
    token: str,
    target: str,
    poll_interval: float,
    counters: dict[str, int],
) -> None:
    """Submit, poll until ready, read the body into memory."""
    params = {"access_token": token}
    async with session.post(f"{base}/v2/profile/{target}/datarequest", params=params) as resp:
        counters["requests"] += 1
        await resp.read()
        rid = resp.headers.get("X-Created")
        if resp.status != 201 or not rid:
            counters["failed"] += 1
            return
    while True:
        async with session.get(f"{base}/v2/datarequest/{rid}", params=params) as resp:
            counters["requests"] += 1
            body = await resp.read()
            if resp.status != 200:
                counters["failed"] += 1
                return
        if len(body) < 200 and PLACEHOLDER in body:
            await asyncio.sleep(poll_interval)
            continue
        counters["done"] += 1
        counters["bytes"] += len(body)
        return


async def main_async(args: argparse.Namespace) -> dict[str, int]:
    """Run every target with at most ``--concurrency`` in flight."""
    ids = read_ids(args.csv)
    counters = {"done": 0, "failed": 0, "bytes": 0, "requests": 0}
    semaphore = asyncio.Semaphore(args.concurrency)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=600, connect=10, sock_read=120)
    base = args.base_url.rstrip("/")

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def guarded(target: str) -> None:
            async with semaphore:
                await export_one(session, base, args.token, target, args.poll_interval, counters)

        await asyncio.gather(*(guarded(t) for t in ids))
    return counters


def script_main(
    doc: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    work: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, int]]],
) -> int:
    """A benchmark client's entry point: the shared options, ``work``, JSON counters out."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--csv", required=True)
    add_arguments(parser)
    counters = asyncio.run(work(parser.parse_args()))
    print(json.dumps(counters))
    return 0 if counters["failed"] == 0 else 1


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--poll-interval", type=float, default=0.5)


def main() -> int:
    """Parse arguments, run, print the JSON counters."""
    return script_main(__doc__ or "", _arguments, main_async)


if __name__ == "__main__":
    sys.exit(main())
