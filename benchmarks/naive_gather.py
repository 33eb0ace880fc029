"""The naive concurrent usage, as a baseline for ``benchmarks/run.py``.

Every target at once under one ``asyncio.gather``, no client-side rate limit:
submit the data request, poll it every ``--poll-interval`` seconds until the
export is there, write it to a file. What a first concurrent script does when
the platform pushes back: a 429 or a 503/504 is waited out for its
Retry-After (seconds; one second without it) and the same call is sent again;
a request the platform no longer knows (404) is submitted again, at most
``--max-resubmits`` times. Plain aiohttp with its default connection pool.

    python benchmarks/naive_gather.py --base-url URL --token TOKEN \
        --csv ids.csv --out DIR [--poll-interval 1.0] [--max-resubmits 5]

Prints one JSON line: {"done", "failed", "bytes", "requests", "throttled",
"overloaded", "resubmits"}.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import aiohttp

# Run as a script, so its folder is on sys.path: share the reference client's helpers.
from reference_client import PLACEHOLDER, read_ids, script_main

#: the answers that mean "slower" (the field notes: overload is a 503/504, not a 429)
_SLOWER = (429, 503, 504)


class _Naive:
    """One run's session, counters and settings."""

    def __init__(self, session: aiohttp.ClientSession, args: argparse.Namespace) -> None:
        self.session = session
        self.base = args.base_url.rstrip("/")
        self.params = {"access_token": args.token}
        self.poll_interval = args.poll_interval
        self.max_resubmits = args.max_resubmits
        self.out = Path(args.out)
        self.counters = {
            "done": 0,
            "failed": 0,
            "bytes": 0,
            "requests": 0,
            "throttled": 0,
            "overloaded": 0,
            "resubmits": 0,
        }

    async def call(self, method: str, path: str) -> tuple[int, bytes, str | None]:
        """One call, sent again after each "slower" answer; status, body and X-Created."""
        while True:
            async with self.session.request(
                method, f"{self.base}{path}", params=self.params
            ) as resp:
                self.counters["requests"] += 1
                body = await resp.read()
                if resp.status not in _SLOWER:
                    return resp.status, body, resp.headers.get("X-Created")
                self.counters["throttled" if resp.status == 429 else "overloaded"] += 1
                wait = _retry_after(resp.headers.get("Retry-After"))
            await asyncio.sleep(wait)

    async def export(self, target: str) -> None:
        """Submit, poll, save; submit again when the platform forgets the request."""
        for attempt in range(self.max_resubmits + 1):
            if attempt:
                self.counters["resubmits"] += 1
            status, _, rid = await self.call("POST", f"/v2/profile/{target}/datarequest")
            if status not in (200, 201) or not rid:
                break
            while True:
                await asyncio.sleep(self.poll_interval)
                status, body, _ = await self.call("GET", f"/v2/datarequest/{rid}")
                if status != 200 or not (len(body) < 200 and PLACEHOLDER in body):
                    break
            if status == 404:
                continue  # expired or forgotten: ask again
            if status == 200:
                (self.out / f"{target}.json").write_bytes(body)
                self.counters["done"] += 1
                self.counters["bytes"] += len(body)
                return
            break
        self.counters["failed"] += 1


def _retry_after(value: str | None) -> float:
    """Retry-After in seconds when it is a number; one second otherwise."""
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0  # an HTTP date: a naive client does not parse it


async def main_async(args: argparse.Namespace) -> dict[str, int]:
    """Every target at once, gathered."""
    Path(args.out).mkdir(parents=True, exist_ok=True)
    timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        naive = _Naive(session, args)
        await asyncio.gather(*(naive.export(target) for target in read_ids(args.csv)))
    return naive.counters


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--max-resubmits", type=int, default=5)


def main() -> int:
    """Parse arguments, run, print the JSON counters."""
    return script_main(__doc__ or "", _arguments, main_async)


if __name__ == "__main__":
    sys.exit(main())
