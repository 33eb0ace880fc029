"""The documented one-at-a-time usage, as a baseline for ``benchmarks/run.py``.

For each ID in turn: submit the data request, poll it every second until the
export is there, save it to a file, then go on to the next ID. Plain aiohttp,
no concurrency, no retries.

    python benchmarks/one_at_a_time.py --base-url URL --token TOKEN \
        --csv ids.csv --out DIR [--poll-interval 1.0]

Prints one JSON line: {"done": n, "failed": n, "bytes": n, "requests": n}.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp

# Run as a script, so its folder is on sys.path: share the reference client's helpers.
from reference_client import PLACEHOLDER, read_ids, script_main


async def main_async(args: argparse.Namespace) -> dict[str, int]:
    """Submit, poll every ``--poll-interval`` seconds, download, next."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counters = {"done": 0, "failed": 0, "bytes": 0, "requests": 0}
    params = {"access_token": args.token}
    base = args.base_url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=600, connect=10, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for target in read_ids(args.csv):
            async with session.post(
                f"{base}/v2/profile/{target}/datarequest", params=params
            ) as resp:
                counters["requests"] += 1
                await resp.read()
                rid = resp.headers.get("X-Created")
            if resp.status != 201 or not rid:
                counters["failed"] += 1
                continue
            while True:
                await asyncio.sleep(args.poll_interval)
                async with session.get(f"{base}/v2/datarequest/{rid}", params=params) as resp:
                    counters["requests"] += 1
                    body = await resp.read()
                if resp.status != 200:
                    counters["failed"] += 1
                    break
                if len(body) < 200 and PLACEHOLDER in body:
                    continue
                (out / f"{target}.json").write_bytes(body)
                counters["done"] += 1
                counters["bytes"] += len(body)
                break
    return counters


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True)
    parser.add_argument("--poll-interval", type=float, default=1.0)


def main() -> int:
    """Parse arguments, run, print the JSON counters."""
    return script_main(__doc__ or "", _arguments, main_async)


if __name__ == "__main__":
    sys.exit(main())
