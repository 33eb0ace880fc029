"""Scenarios "limit-unknown" and "limit-strict" of ``benchmarks/run.py``: the rate limit search.

**limit-unknown**: the account's limit is not given (no ``--rate``). Two
platforms: 3000 targets at 100 req/s burst 20 (the rate-bound case) and 200
targets at 50 req/s burst 10, preparation uniform 0.5-3 s, ``--max-pending
1000``. Against one simulator each, one after the other (its counters zeroed
between them): the exporter finding the limit; the exporter again into a
fresh output directory with the same cache directory (it starts from the
remembered limit); the unthrottled ``asyncio.gather`` baseline
(``naive_gather.py``) on the first ``GATHER_N`` targets; the one-at-a-time
baseline on the first ``ONE_AT_A_TIME_N`` (it takes ~2.5 s per target).
Efficiency = (2N/R + 3 s) / wall, each client against its own N.

**limit-strict**: 20 req/s burst 5, no ``--rate``, 400 targets, the refusal
shown three ways (``--throttle-style 429``, ``503-html``, ``504-html``: the
overloaded load balancer's page). The figure is the share of refusals among
all requests the simulator counted; the baselines run on the same platform
(the gather on the first ``STRICT_GATHER_N`` targets).

Registered in ``run.py``'s SCENARIOS; it uses that module's helpers, so run it
through ``python benchmarks/run.py --scenario limit-unknown`` (or ``limits``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import run as harness
from run import Config, Result, Simulator, check_run, fmt, request_split, write_ids

__all__ = ["scenario_limit_strict", "scenario_limit_unknown"]

#: the baselines' share of the targets (both are bounded in time: the gather
#: of 400 on the strict limit took 72-92 s, so it gets 200 there)
GATHER_N = 500
STRICT_GATHER_N = 200
ONE_AT_A_TIME_N = 8
MAX_PREP = 3.0
CACHE_ENV = "BATCH_EXPORT_CACHE_DIR"


def _exporter(
    sim: Simulator, csv_path: Path, out: Path, cache: Path, work: Path, name: str, timeout: float
) -> dict[str, Any]:
    """The exporter without --rate, its limit remembered in ``cache``; the simulator's counters."""
    cmd = [harness.PY, "-m", "batch_export", "run", str(csv_path), "--out", str(out)]
    cmd += ["--api-url", sim.url, "--max-pending", "1000", "--no-progress", "--json", "-v"]
    env = harness.clean_env(COPERNICA_ACCESS_TOKEN=sim.token, **{CACHE_ENV: str(cache)})
    m = harness.measure(cmd, workdir=work, name=name, env=env, timeout=timeout)
    m["simulator"] = {"stats": sim.stats()}
    sim.reset_stats()
    return m


def _baselines(cfg: Config, gather_n: int) -> list[tuple[str, int]]:
    """The baseline scripts and how many targets each gets (smoke: a gather of 2 only)."""
    if cfg.smoke:
        return [("naive_gather.py", 2)]
    return [("naive_gather.py", gather_n), ("one_at_a_time.py", ONE_AT_A_TIME_N)]


def _refusals(stats: dict[str, Any]) -> int:
    """Every "slower" answer the simulator gave: 429s and overload 503/504 pages."""
    responses = stats.get("responses", {})
    return sum(int(responses.get(code, 0)) for code in ("429", "503", "504"))


def _start(m: dict[str, Any]) -> str:
    """Where the exporter's start rate came from, as its log says."""
    tail: str = m.get("stderr_tail", "")
    for line in tail.splitlines():
        if "remembered limit" in line:
            return "remembered: " + line.split("remembered limit: ", 1)[-1]
    return "search from the initial rate"


def _client_rows(
    res: Result, label: str, m: dict[str, Any], n: int, rate: float, goal: float | None
) -> None:
    """Wall time, efficiency against 2n/R + 3 s, refusals and requests for one client's run."""
    stats = m["simulator"]["stats"]
    ideal = 2 * n / rate + MAX_PREP
    eff = ideal / m["wall_s"]
    total = max(1, stats["requests_total"])
    refused = _refusals(stats)
    res.add(label, "N / wall time", f"{n} / {fmt(m['wall_s'], 1)} s")
    if goal is None:
        res.add(label, "efficiency (ideal / wall)", fmt(eff))
    else:
        res.add(label, "efficiency (ideal / wall)", fmt(eff), f">= {goal:.2f}", eff >= goal)
    res.add(
        label,
        "refusals (429/503/504), % of requests",
        f"{refused} ({fmt(100 * refused / total)} %)",
    )
    res.add(
        label, "requests per export / submits / polls", f"{fmt(total / n)} / {request_split(stats)}"
    )


def _run_baselines(
    cfg: Config,
    res: Result,
    sim: Simulator,
    sub: Path,
    n: int,
    rate: float,
    gather_n: int,
    tag: str,
) -> dict[str, Any]:
    """Both naive clients against ``sim`` on their first targets, rows added; their raw figures."""
    raw: dict[str, Any] = {}
    for script, count in _baselines(cfg, gather_n):
        k = min(n, count)
        ids = write_ids(sub / f"ids-{k}.csv", k)
        name = script.removesuffix(".py")
        raw[script] = harness.run_baseline(
            script, sim, ids, sub / f"out-{name}", work=sub, name=name, timeout=cfg.timeout
        )
        sim.reset_stats()
        _client_rows(res, f"{tag}: {script} (first {k})", raw[script], k, rate, None)
    return raw


def scenario_limit_unknown(cfg: Config, work: Path) -> Result:
    """The limit left for the exporter to find, then remembered; the naive baselines beside it."""
    res = Result("limit-unknown")
    delay = "0.1:0.3" if cfg.smoke else f"0.5:{MAX_PREP:g}"
    platforms = ((3000, 100.0, 20, 0.97), (200, 50.0, 10, 0.92))
    for default_n, rate, burst, goal in platforms[1:] if cfg.smoke else platforms:
        n = cfg.n(default_n, 6)
        tag = f"{default_n} @ {rate:g}/s burst {burst}"
        sub = work / f"{default_n}"
        sub.mkdir()
        csv_path = write_ids(sub / "ids.csv", n)
        options = ["--rate-limit", str(rate), "--burst", str(burst), "--prepare-delay", delay]
        options += ["--export-size", "20k"]
        cache = sub / "cache"
        raw: dict[str, Any] = {"n": n, "rate": rate, "burst": burst}
        with Simulator(sub, options, name="sim") as sim:
            for run, out in (("finding", "out-1"), ("remembered", "out-2")):
                m = _exporter(sim, csv_path, sub / out, cache, sub, f"exporter-{run}", cfg.timeout)
                raw[run] = m
                label = f"{tag}: exporter, {run}"
                check_run(res, label, m, n)
                _client_rows(res, label, m, n, rate, None if cfg.smoke else goal)
                summary = m.get("stdout_json") or {}
                res.add(label, "start / limit found", f"{_start(m)} / {summary.get('rate_found')}")
            raw.update(_run_baselines(cfg, res, sim, sub, n, rate, GATHER_N, tag))
        res.raw[tag] = raw
    return res


def scenario_limit_strict(cfg: Config, work: Path) -> Result:
    """A strict 20 req/s burst 5 limit shown as 429, 503 or 504: the share of refusals."""
    res = Result("limit-strict")
    n = cfg.n(400, 6)
    rate = 20.0
    delay = "0.1:0.3" if cfg.smoke else f"0.5:{MAX_PREP:g}"
    styles = ["429"] if cfg.smoke else ["429", "503-html", "504-html"]
    for style in styles:
        sub = work / style
        sub.mkdir()
        csv_path = write_ids(sub / "ids.csv", n)
        options = ["--rate-limit", "20", "--burst", "5", "--prepare-delay", delay]
        options += ["--export-size", "2k", "--throttle-style", style]
        with Simulator(sub, options, name="sim") as sim:
            m = _exporter(sim, csv_path, sub / "out", sub / "cache", sub, "exporter", cfg.timeout)
            res.raw[style] = {"exporter": m}
            label = f"{style}: exporter"
            check_run(res, label, m, n)
            stats = m["simulator"]["stats"]
            share = 100 * _refusals(stats) / max(1, stats["requests_total"])
            goal = f"<= 1 % ({'429s' if style == '429' else 'overload answers'})"
            res.add(label, "refusals, % of requests", f"{fmt(share)} %", goal, share <= 1.0)
            _client_rows(res, label, m, n, rate, None)
            res.raw[style].update(
                _run_baselines(cfg, res, sim, sub, n, rate, STRICT_GATHER_N, style)
            )
    return res
