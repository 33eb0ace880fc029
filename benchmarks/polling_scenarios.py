"""Scenario "expiring" of ``benchmarks/run.py``: files that expire soon after they are ready.

The simulator keeps a ready file ``--expire-after 1.5`` seconds; in the second
variant it also forgets 15 % of the data requests before they are ready
(``--forget-rate 0.15``: their GETs answer as for an unknown ID). Each variant
runs three clients, one after the other, against one simulator of its own
(its counters zeroed between them), side by side in one invocation: the exporter, the one-at-a-time baseline (on the first
``ONE_AT_A_TIME_N`` targets: it takes ~2.5 s each) and the unthrottled
``asyncio.gather`` baseline. The figure is requests per export, from the
simulator's counters (every request the client sent, divided by the exports
it saved).

The simulator comes from ``--code-dir`` when that one knows ``--forget-rate``,
else from this checkout, so a baseline of older code still meets forgetting.

Registered in ``run.py``'s SCENARIOS; it uses that module's helpers, so run it
through ``python benchmarks/run.py --scenario expiring``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import run as harness
from run import Config, Result, Simulator, check_run, fmt, request_split, run_exporter, write_ids

__all__ = ["scenario_expiring"]

#: how many targets the one-at-a-time baseline exports (it is sequential)
ONE_AT_A_TIME_N = 30
GOAL = 2.6


def _simulator_dir() -> Path:
    """``--code-dir`` when its simulator knows ``--forget-rate``, else this checkout."""
    options = harness.CODE_DIR / "batch_export" / "simulator" / "options.py"
    if options.exists() and "--forget-rate" in options.read_text(encoding="utf-8"):
        return harness.CODE_DIR
    return harness.ROOT


@contextlib.contextmanager
def _checkout_simulator(work: Path, options: list[str], name: str) -> Iterator[Simulator]:
    """A simulator that knows ``--forget-rate`` (see ``_simulator_dir``)."""
    saved = harness.CODE_DIR
    harness.CODE_DIR = _simulator_dir()
    try:
        sim = Simulator(work, options, name=name).__enter__()
    finally:
        harness.CODE_DIR = saved
    try:
        yield sim
    finally:
        sim.stop()


def _per_export(stats: dict[str, Any]) -> tuple[float, int]:
    """Requests per saved export and the exports saved, from the simulator's counters."""
    served = int(stats.get("exports_served", 0))
    return (stats["requests_total"] / served if served else float("inf")), served


def _rows(res: Result, label: str, m: dict[str, Any], goal: bool) -> None:
    stats = m["simulator"]["stats"]
    per, served = _per_export(stats)
    if goal:
        res.add(label, "requests per export", fmt(per), f"<= {GOAL:g}", per <= GOAL)
    else:
        res.add(label, "requests per export", fmt(per))
    res.add(
        label,
        "exports / requests: submits / polls",
        f"{served} / {request_split(stats)}",
    )
    gone = stats.get("expired_seen", 0) + stats.get("forgotten_seen", 0)
    res.add(
        label,
        "404s (expired / forgotten)",
        f"{gone} ({stats.get('expired_seen', 0)} / {stats.get('forgotten_seen', 0)})",
    )
    res.add(label, "wall time", f"{fmt(m['wall_s'], 1)} s")


def floor(low: float, high: float, expire: float, forget: float) -> float:
    """Requests per export of the best evenly spaced check schedule, knowing the platform.

    Preparation uniform in ``low..high``; a ready file stays ``expire``
    seconds; a share ``forget`` of requests is lost at a uniform moment before
    it would be ready. A schedule checks at ``first``, ``first + step``, ...;
    a file that expires unseen is asked for again (as a forgotten one is).
    Exact expectations on a fine grid of preparation times, searched over
    ``first`` and ``step``: what no client without that knowledge can beat.
    """
    times = [low + (high - low) * (i + 0.5) / 200 for i in range(200)]
    best = math.inf
    for a in range(1, 61):
        first = a * (high + expire) / 60
        for b in range(1, 21):
            step = b * expire / 20
            checks_ok = lost = checks_forgot = 0.0
            for t in times:
                k = max(0, math.ceil((t - first) / step - 1e-12))  # checks before it is ready
                seen = first + k * step
                if seen - t >= expire:
                    lost += 1
                checks_ok += k + 1
                # forgotten at a uniform moment in (0, t): found gone at the first check after
                for j in range(4):
                    f = t * (j + 0.5) / 4
                    checks_forgot += (max(0, math.ceil((f - first) / step - 1e-12)) + 1) / 4
            n = len(times)
            ok, gone = 1 - forget, forget + (1 - forget) * lost / n
            if gone >= 1:
                continue
            # per attempt: one POST, its checks; attempts until one succeeds: 1 / (1 - gone)
            per_attempt = 1 + ok * checks_ok / n + forget * checks_forgot / n
            best = min(best, per_attempt / (1 - gone))
    return best


def scenario_expiring(cfg: Config, work: Path) -> Result:
    """6. Files expiring 1.5 s after ready, alone and with 15 % of requests forgotten."""
    res = Result("expiring")
    n = cfg.n(1000, 10)
    rate, window = 100.0, (10 if cfg.smoke else 60)
    prep = "0.1:0.3" if cfg.smoke else "0.5:3"
    variants = {"expire": ["--expire-after", "1.5"]}
    variants["expire+forget"] = [*variants["expire"], "--forget-rate", "0.15"]
    base = ["--rate-limit", str(rate), "--burst", "20", "--prepare-delay", prep]
    base += ["--export-size", "20k"]
    csv_path = write_ids(work / "ids.csv", n)
    few = write_ids(work / "few.csv", min(n, 2 if cfg.smoke else ONE_AT_A_TIME_N))
    res.raw.update(n=n, rate=rate, max_pending=window, prepare_delay=prep, runs={})
    for variant, extra in variants.items():
        runs: dict[str, Any] = {}
        # One platform per variant; each client starts from zeroed counters.
        with _checkout_simulator(work, [*base, *extra], f"sim-{variant}") as sim:
            m = run_exporter(
                sim,
                csv_path,
                work / f"out-{variant}",
                ["--rate", str(rate), "--max-pending", str(window)],
                workdir=work,
                name=f"exporter-{variant}",
                timeout=cfg.timeout,
            )
            m["simulator"] = {"stats": sim.stats()}
            runs["exporter"] = m
            for script, ids in (("one_at_a_time.py", few), ("naive_gather.py", csv_path)):
                sim.reset_stats()
                out = work / f"out-{variant}-{script}"
                runs[script] = harness.run_baseline(
                    script,
                    sim,
                    ids,
                    out,
                    work=work,
                    name=f"{script}-{variant}",
                    timeout=cfg.timeout,
                )
        label = f"{variant}: exporter"
        check_run(res, label, m, n)
        _rows(res, label, m, goal=True)
        low, high = (float(x) for x in prep.split(":"))
        best = floor(low, high, 1.5, 0.15 if "forget" in variant else 0.0)
        runs["floor"] = best
        res.add(label, "floor: best fixed schedule, knowing the platform (computed)", fmt(best))
        for script in ("one_at_a_time.py", "naive_gather.py"):
            _rows(res, f"{variant}: {script.removesuffix('.py')}", runs[script], goal=False)
        res.raw["runs"][variant] = runs
    return res
