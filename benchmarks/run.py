"""Benchmark harness for batch-export: every figure measured next to its goal.

Each scenario starts the embedded simulator in its own process
(``python -m batch_export.simulator --port 0 --json ...``) and runs the
exporter (``python -m batch_export run ...``) as a separate subprocess. The
exporter's own CPU (user+sys) and peak RSS come from ``os.wait4`` on its pid,
so nothing of the simulator or of this harness is mixed in; wall time is
measured around the exporter process (interpreter start included).

    python benchmarks/run.py                       # every scenario, default sizes
    python benchmarks/run.py --scenario rate-bound # one scenario (repeatable)
    python benchmarks/run.py --smoke               # everything, tiny, < 30 s
    python benchmarks/run.py --scale 0.1           # every N divided by 10

Prints a markdown table and writes raw results to
``benchmarks/results/<scenario>.json`` (git-ignored). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
DEFAULT_RESULTS = BENCH / "results"
PY = sys.executable
#: where `python -m batch_export` is imported from (``--code-dir``; default: this checkout)
CODE_DIR = ROOT
#: the exporters' cache of remembered rate limits: one per harness run, removed at its end
LIMIT_CACHE = Path(tempfile.mkdtemp(prefix="bench-limit-cache-"))
atexit.register(shutil.rmtree, LIMIT_CACHE, ignore_errors=True)

# --------------------------------------------------------------------------- processes


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: no proxies, only 127.0.0.1 traffic."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    # Remembered rate limits go to this harness's own cache, never the user's
    # (each simulator has a port of its own, so the accounts do not mix).
    env["BATCH_EXPORT_CACHE_DIR"] = str(LIMIT_CACHE)
    if CODE_DIR != ROOT:
        env["PYTHONPATH"] = str(CODE_DIR)
    env.update(extra)
    return env


def rusage_dict(ru: Any) -> dict[str, float]:
    """CPU seconds and peak RSS (ru_maxrss is KB on Linux) of one reaped process."""
    return {
        "cpu_user_s": round(ru.ru_utime, 3),
        "cpu_sys_s": round(ru.ru_stime, 3),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "max_rss_mb": round(ru.ru_maxrss / 1024, 1),
    }


def measure(
    cmd: list[str], *, workdir: Path, name: str, env: dict[str, str], timeout: float
) -> dict[str, Any]:
    """Run ``cmd`` to completion; wall time around it, its own rusage via os.wait4."""
    out_path, err_path = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=CODE_DIR, env=env)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    parsed: Any = None
    text = stdout.strip()
    if text:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    return {
        "cmd": cmd,
        "returncode": proc.returncode,
        "timed_out": wall >= timeout,
        "wall_s": round(wall, 3),
        **rusage_dict(ru),
        "stdout_json": parsed,
        "stderr_tail": stderr[-3000:],
        "traceback_in_stderr": "Traceback (most recent call last)" in stderr,
    }


class Simulator:
    """The simulator in its own process; counters via /_sim/stats; rusage on stop."""

    def __init__(self, workdir: Path, options: list[str], name: str = "simulator") -> None:
        self.workdir = workdir
        self.options = options
        self.name = name
        self.info: dict[str, str] = {}
        self.rusage: dict[str, float] = {}
        self.returncode: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Simulator:
        out_path = self.workdir / f"{self.name}.stdout"
        cmd = [PY, "-m", "batch_export.simulator", "--host", "127.0.0.1", "--port", "0"]
        cmd += ["--json", *self.options]
        with out_path.open("wb") as out, (self.workdir / f"{self.name}.stderr").open("wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=CODE_DIR, env=clean_env())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = out_path.read_text().split("\n", 1)
            if len(line) == 2 and line[0].strip():
                self.info = json.loads(line[0])
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        stderr = (self.workdir / f"{self.name}.stderr").read_text(errors="replace")
        raise RuntimeError(f"simulator did not start: {' '.join(cmd)}\n{stderr[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The simulator's base URL."""
        return self.info["base_url"]

    @property
    def token(self) -> str:
        """The simulator's valid access token."""
        return self.info["token"]

    def stats(self) -> dict[str, Any]:
        """GET /_sim/stats, with the per-target dicts reduced to a summary."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.url}/_sim/stats", timeout=60) as resp:
            stats: dict[str, Any] = json.loads(resp.read())
        posts = stats.pop("posts_per_target", {}) or {}
        stats.pop("created_per_target", None)
        stats["posts_max_per_target"] = max(posts.values(), default=0)
        stats["targets_posted_more_than_once"] = sum(1 for v in posts.values() if v > 1)
        return stats

    def reset_stats(self) -> None:
        """Zero the simulator's counters (its data requests and buckets stay): between clients."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(f"{self.url}/_sim/reset-stats", data=b"", method="POST")
        with opener.open(request, timeout=60):
            pass

    def stop(self) -> None:
        """SIGTERM, then reap with os.wait4 to read the simulator's own CPU and RSS."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            killer = threading.Timer(20, proc.kill)
            killer.start()
            try:
                _, status, ru = os.wait4(proc.pid, 0)
            finally:
                killer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.rusage = rusage_dict(ru)
        self.returncode = proc.returncode


def write_ids(path: Path, n: int, start: int = 1) -> Path:
    """A CSV with a profile_id header and ``n`` sequential IDs."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write("profile_id\n")
        chunk = 100_000
        for lo in range(start, start + n, chunk):
            hi = min(lo + chunk, start + n)
            handle.write("".join(f"{i}\n" for i in range(lo, hi)))
    return path


def run_exporter(
    sim: Simulator,
    csv_path: Path,
    out_dir: Path,
    args: list[str],
    *,
    workdir: Path,
    name: str,
    timeout: float,
) -> dict[str, Any]:
    """The exporter as a real subprocess against ``sim``; its summary and rusage."""
    cmd = [PY, "-m", "batch_export", "run", str(csv_path), "--out", str(out_dir)]
    cmd += ["--api-url", sim.url, *args, "--no-progress", "--json"]
    env = clean_env(COPERNICA_ACCESS_TOKEN=sim.token)
    return measure(cmd, workdir=workdir, name=name, env=env, timeout=timeout)


def client_command(script: str, sim: Simulator, csv_path: Path, *extra: str) -> list[str]:
    """A benchmark client script (``benchmarks/SCRIPT``) pointed at ``sim`` and the IDs."""
    cmd = [PY, str(BENCH / script), "--base-url", sim.url, "--token", sim.token]
    return [*cmd, "--csv", str(csv_path), *extra]


def run_baseline(
    script: str, sim: Simulator, csv_path: Path, out: Path, *, work: Path, name: str, timeout: float
) -> dict[str, Any]:
    """A naive client (``benchmarks/SCRIPT``) against ``sim``: its counters, then the simulator's.

    The baselines import nothing of batch_export, so they run the same whatever
    ``--code-dir`` says.
    """
    global CODE_DIR
    cmd = client_command(script, sim, csv_path, "--out", str(out))
    saved, CODE_DIR = CODE_DIR, ROOT
    try:
        m = measure(cmd, workdir=work, name=name, env=clean_env(), timeout=timeout)
    finally:
        CODE_DIR = saved
    m["simulator"] = {"stats": sim.stats()}
    return m


# --------------------------------------------------------------------------- table rows


@dataclass
class Row:
    """One figure of the table: value next to its goal."""

    scenario: str
    run: str
    figure: str
    value: str
    goal: str = ""
    met: bool | None = None


@dataclass
class Result:
    """What a scenario hands back: rows for the table, raw data for the JSON file."""

    scenario: str
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def add(
        self, run: str, figure: str, value: str, goal: str = "", met: bool | None = None
    ) -> None:
        """Append one row."""
        self.rows.append(Row(self.scenario, run, figure, value, goal, met))


def fmt(x: float, digits: int = 2) -> str:
    """A number with ``digits`` decimals."""
    return f"{x:.{digits}f}"


def check_run(result: Result, run: str, measured: dict[str, Any], expected_done: int) -> bool:
    """Add a row when the exporter did not finish cleanly; True when it did."""
    summary = measured.get("stdout_json") or {}
    done = (summary.get("counts") or {}).get("done")
    ok = measured["returncode"] == 0 and done == expected_done
    if not ok:
        result.add(
            run,
            "completed",
            f"exit {measured['returncode']}, done {done}/{expected_done}"
            + (" (TIMED OUT)" if measured["timed_out"] else ""),
            "exit 0, all done",
            False,
        )
    if measured.get("traceback_in_stderr"):
        result.add(run, "traceback on stderr", "yes", "none", False)
    return ok


def request_split(stats: dict[str, Any]) -> str:
    """'POST n / GET n' from the simulator's per-endpoint counters."""
    req = stats.get("requests", {})
    return f"POST {req.get('POST datarequest', 0)} / GET {req.get('GET datarequest', 0)}"


# --------------------------------------------------------------------------- scenarios


@dataclass
class Config:
    """Sizes for one invocation (defaults, scaled, or smoke)."""

    smoke: bool
    scale: float
    rows: int | None
    journal_rows: int | None
    big_export_size: str | None
    timeout: float

    def n(self, default: int, smoke: int) -> int:
        """A target count: ``smoke`` in smoke mode, else ``default`` times the scale."""
        return smoke if self.smoke else max(1, round(default * self.scale))


def scenario_rate_bound(cfg: Config, work: Path) -> Result:
    """1. Rate-bound: with --rate R and with the limit left for the exporter to find."""
    res = Result("rate-bound")
    n = cfg.n(3000, 20)
    rate, burst = 100.0, 20
    delay, max_delay = ("0.1:0.3", 0.3) if cfg.smoke else ("0.5:3", 3.0)
    ideal = 2 * n / rate + max_delay
    sim_opts = ["--rate-limit", str(rate), "--burst", str(burst), "--prepare-delay", delay]
    sim_opts += ["--export-size", "20k"]
    csv_path = write_ids(work / "ids.csv", n)
    res.raw.update(n=n, rate_limit=rate, burst=burst, prepare_delay=delay, ideal_s=ideal)
    res.add("both", "N / ideal 2N/R + max delay", f"{n} / {fmt(ideal, 1)} s")
    for label, extra, eff_goal, max_429_pct in (
        ("--rate 100", ["--rate", "100"], 0.90, 0.0),
        ("no --rate", [], 0.85, 2.0),
    ):
        with Simulator(work, sim_opts, name=f"sim-{label[:4]}") as sim:
            m = run_exporter(
                sim,
                csv_path,
                work / f"out-{len(extra)}",
                [*extra, "--max-pending", "1000"],
                workdir=work,
                name=f"exporter-{len(extra)}",
                timeout=cfg.timeout,
            )
            stats = sim.stats()
        m["simulator"] = {"rusage": sim.rusage, "stats": stats}
        res.raw[label] = m
        check_run(res, label, m, n)
        eff = ideal / m["wall_s"]
        per = stats["requests_total"] / n
        n429 = stats["responses_429"]
        pct = 100 * n429 / max(1, stats["requests_total"])
        res.add(label, "wall time", f"{fmt(m['wall_s'], 1)} s")
        res.add(label, "efficiency (ideal / wall)", fmt(eff), f">= {eff_goal:.2f}", eff >= eff_goal)
        res.add(label, "requests per export", fmt(per), "<= 2.2", per <= 2.2)
        res.add(
            label,
            "429s received",
            str(n429),
            "0" if max_429_pct == 0 else "",
            n429 == 0 if max_429_pct == 0 else None,
        )
        res.add(
            label,
            "429s as % of requests",
            f"{fmt(pct)} %",
            f"<= {max_429_pct:g} %",
            pct <= max_429_pct,
        )
        res.add(label, "requests: submits / polls", request_split(stats))
        res.add(label, "exporter CPU / peak RSS", f"{m['cpu_s']} s / {m['max_rss_mb']} MB")
    return res


def scenario_overhead(cfg: Config, work: Path) -> Result:
    """2. Overhead: exporter vs a minimal reference client, CPU per export."""
    res = Result("overhead")
    n = cfg.n(20000, 60)
    concurrency = 16
    sim_opts = ["--rate-limit", "0", "--prepare-delay", "0", "--export-size", "5k"]
    csv_path = write_ids(work / "ids.csv", n)
    res.raw.update(n=n, concurrency=concurrency, simulator_options=sim_opts)
    runs: dict[str, dict[str, Any]] = {}
    with Simulator(work, sim_opts, name="sim-exporter") as sim:
        m = run_exporter(
            sim,
            csv_path,
            work / "out",
            ["--concurrency", str(concurrency)],
            workdir=work,
            name="exporter",
            timeout=cfg.timeout,
        )
        stats = sim.stats()
    m["simulator"] = {"rusage": sim.rusage, "stats": stats}
    check_run(res, "exporter", m, n)
    runs["exporter"] = m
    with Simulator(work, sim_opts, name="sim-reference") as sim:
        cmd = client_command(
            "reference_client.py", sim, csv_path, "--concurrency", str(concurrency)
        )
        r = measure(cmd, workdir=work, name="reference", env=clean_env(), timeout=cfg.timeout)
        stats = sim.stats()
    r["simulator"] = {"rusage": sim.rusage, "stats": stats}
    done = (r.get("stdout_json") or {}).get("done")
    if r["returncode"] != 0 or done != n:
        res.add(
            "reference",
            "completed",
            f"exit {r['returncode']}, done {done}/{n}",
            "exit 0, all done",
            False,
        )
    runs["reference"] = r
    res.raw.update(runs)
    per = {}
    for label, run in runs.items():
        per[label] = run["cpu_s"] / n
        sim_cpu = run["simulator"]["rusage"].get("cpu_s", float("nan"))
        res.add(label, "exports/s", fmt(n / run["wall_s"], 1))
        res.add(label, "CPU s per 1000 exports", fmt(1000 * per[label], 3))
        res.add(label, "peak RSS", f"{run['max_rss_mb']} MB")
        res.add(
            label,
            "simulator CPU (s) / wall (s)",
            f"{fmt(sim_cpu)} / {fmt(run['wall_s'])} ({fmt(100 * sim_cpu / run['wall_s'], 0)} % of a core)",
        )
    ratio = per["exporter"] / per["reference"] if per["reference"] else float("inf")
    res.raw["cpu_ratio"] = ratio
    res.add("exporter vs reference", "CPU per export ratio", fmt(ratio), "<= 2.0", ratio <= 2.0)
    # What durable files alone cost on this disk: the part of the gap no client
    # that keeps its exports can avoid (and the part that varies most from run to run),
    # an fsync per file and the group commit the store uses where it has syncfs.
    for mode, label, key in (
        ("fsync", "file floor", "file_floor"),
        ("syncfs", "file floor, syncfs per 16 files", "file_floor_syncfs"),
    ):
        floor_cmd = [PY, str(BENCH / "file_floor.py"), "--dir", str(work / key)]
        floor_cmd += ["--count", str(n), "--size", "5000", "--mode", mode]
        floor = measure(floor_cmd, workdir=work, name=key, env=clean_env(), timeout=cfg.timeout)
        res.raw[key] = floor
        if floor["returncode"] != 0:
            res.add(label, "completed", f"exit {floor['returncode']}", "exit 0", False)
            continue
        floor_per = floor["cpu_s"] / n
        res.add(
            label,
            f"CPU s per 1000 files (create, {mode}, rename)",
            f"{fmt(1000 * floor_per, 3)} (user {fmt(floor['cpu_user_s'])} s, "
            f"sys {fmt(floor['cpu_sys_s'])} s)",
        )
        rest = per["exporter"] - floor_per
        res.add(
            f"exporter minus {label}",
            "CPU per export vs reference",
            fmt(rest / per["reference"]) if per["reference"] else "n/a",
        )
    overhead_ablations(res, cfg, work, csv_path, sim_opts, per, n)
    return res


#: (label, parts switched off) for the overhead scenario's ablation runs
ABLATIONS = [
    ("without journal writes", ["journal"]),
    ("without file writes", ["files"]),
    ("HTTP and pipeline only", ["journal", "files", "check"]),
]


def overhead_ablations(
    res: Result,
    cfg: Config,
    work: Path,
    csv_path: Path,
    sim_opts: list[str],
    per: dict[str, float],
    n: int,
) -> None:
    """The exporter again with parts switched off (benchmarks/ablation.py): what each costs."""
    runs: dict[str, Any] = {}
    # The last one switches every part off, so a smoke run exercises all of ablation.py.
    for label, parts in ABLATIONS[-1:] if cfg.smoke else ABLATIONS:
        name = "ablation-" + "-".join(parts)
        with Simulator(work, sim_opts, name=f"sim-{name}") as sim:
            cmd = [PY, str(BENCH / "ablation.py")]
            cmd += [arg for part in parts for arg in ("--without", part)]
            cmd += ["--", "run", str(csv_path), "--out", str(work / name)]
            cmd += ["--api-url", sim.url, "--concurrency", "16", "--no-progress", "--json"]
            env = clean_env(COPERNICA_ACCESS_TOKEN=sim.token)
            m = measure(cmd, workdir=work, name=name, env=env, timeout=cfg.timeout)
            stats = sim.stats()
        runs[label] = m
        requests = stats.get("requests", {})
        sent = requests.get("POST datarequest", 0) + requests.get("GET datarequest", 0)
        if m["traceback_in_stderr"] or m["timed_out"] or sent != 2 * n:
            res.add(label, "completed", f"{sent} of {2 * n} requests", "all sent", False)
            continue
        cost = m["cpu_s"] / n
        ratio = cost / per["reference"] if per["reference"] else float("inf")
        saved = per["exporter"] - cost
        res.add(
            label,
            "CPU s per 1000 exports (vs reference; saved vs full exporter)",
            f"{fmt(1000 * cost, 3)} ({fmt(ratio)}x; {fmt(1000 * saved, 3)})",
        )
    res.raw["ablations"] = runs


def scenario_memory_1g(cfg: Config, work: Path) -> Result:
    """3a. One big export streamed: peak RSS and MB/s."""
    res = Result("memory-1g")
    size = cfg.big_export_size or ("5m" if cfg.smoke else "1g")
    sim_opts = ["--prepare-delay", "0", "--export-size", size, "--rate-limit", "0"]
    csv_path = write_ids(work / "ids.csv", 1)
    with Simulator(work, sim_opts) as sim:
        m = run_exporter(
            sim, csv_path, work / "out", [], workdir=work, name="exporter", timeout=cfg.timeout
        )
        stats = sim.stats()
    m["simulator"] = {"rusage": sim.rusage, "stats": stats}
    big_export_rows(res, size, m, stats, limit_mb=80)
    return res


def big_export_rows(
    res: Result, size: str, m: dict[str, Any], stats: dict[str, Any], *, limit_mb: int
) -> None:
    """The rows of a one-big-export run: completed, peak RSS against its limit, MB/s, CPU."""
    res.raw.update(export_size=size, run=m)
    check_run(res, f"1 x {size}", m, 1)
    nbytes = stats.get("bytes_served", 0)
    rss = m["max_rss_mb"]
    res.add(f"1 x {size}", "exporter peak RSS", f"{rss} MB", f"<= {limit_mb} MB", rss <= limit_mb)
    res.add(f"1 x {size}", "throughput", f"{fmt(nbytes / 1e6 / m['wall_s'], 1)} MB/s")
    res.add(f"1 x {size}", "wall / exporter CPU", f"{fmt(m['wall_s'], 1)} s / {m['cpu_s']} s")


def scenario_memory_csv(cfg: Config, work: Path) -> Result:
    """3b. A huge CSV of tiny exports: peak RSS."""
    res = Result("memory-csv")
    rows = cfg.rows if cfg.rows is not None else cfg.n(1_000_000, 60)
    sim_opts = ["--prepare-delay", "0", "--export-size", "300", "--rate-limit", "0"]
    csv_path = write_ids(work / "ids.csv", rows)
    with Simulator(work, sim_opts) as sim:
        m = run_exporter(
            sim, csv_path, work / "out", [], workdir=work, name="exporter", timeout=cfg.timeout
        )
        stats = sim.stats()
    m["simulator"] = {"rusage": sim.rusage, "stats": stats}
    res.raw.update(rows=rows, run=m)
    label = f"{rows:,} rows"
    check_run(res, label, m, rows)
    res.add(label, "rows used", f"{rows:,}")
    res.add(
        label, "exporter peak RSS", f"{m['max_rss_mb']} MB", "<= 150 MB", m["max_rss_mb"] <= 150
    )
    res.add(label, "wall / exports/s", f"{fmt(m['wall_s'], 1)} s / {fmt(rows / m['wall_s'], 0)}")
    res.add(
        label,
        "exporter CPU / simulator CPU",
        f"{m['cpu_s']} s / {sim.rusage.get('cpu_s', float('nan'))} s",
    )
    return res


def write_done_journal(out_dir: Path, rows: int) -> None:
    """A journal of ``rows`` done records (and its CSV), without any export files."""
    out_dir.mkdir(parents=True)
    with (out_dir / "journal.jsonl").open("w", encoding="utf-8") as handle:
        header = {
            "format": "batch-export-journal",
            "version": 1,
            "kind": "profile",
            "created": time.time(),
        }
        handle.write(json.dumps(header) + "\n")
        chunk = 50_000
        ts = 1764331200.0
        for lo in range(1, rows + 1, chunk):
            handle.write(
                "".join(
                    f'{{"ts":{ts + i / 1000:.3f},"ev":"done","id":"{i}","rid":"dr_{i:x}",'
                    f'"file":"{_default_file(i)}","bytes":300,'
                    f'"sha256":"{i:064x}"}}\n'
                    for i in range(lo, min(lo + chunk, rows + 1))
                )
            )


def _default_file(profile: int) -> str:
    """The name a run gives profile ``profile``'s export (``storage/naming.export_relname``).

    A resume keeps in memory only the names that are not the default one, so
    a journal of other names would measure a case runs do not make.
    """
    bucket = hashlib.sha256(f"profile:{profile}".encode()).hexdigest()[:3]
    return f"exports/profile/{bucket}/{profile}.json"


def scenario_memory_resume(cfg: Config, work: Path) -> Result:
    """3c. `status` over a journal of 1,000,000 done records, and a resume's replay of it.

    ``--journal-rows 10000000`` for the 10M figure (a 1.9 GB journal, deleted after).
    """
    res = Result("memory-resume")
    rows = cfg.journal_rows if cfg.journal_rows is not None else cfg.n(1_000_000, 2000)
    out_dir = work / "out"
    t0 = time.perf_counter()
    write_done_journal(out_dir, rows)
    write_ids(work / "ids.csv", rows)
    build = time.perf_counter() - t0
    label = f"{rows:,} done records"
    # What a run's end adds (after its seal): the checkpoint that spares the
    # next status or resume the replay of these lines. The code before it has none.
    cmd = [PY, "-c", _WRITE_CHECKPOINT, str(out_dir)]
    c = measure(cmd, workdir=work, name="checkpoint", env=clean_env(), timeout=cfg.timeout)
    res.raw["checkpoint"] = c
    if c["returncode"] == 0 and (out_dir / "state.checkpoint").exists():
        res.add(
            label,
            "checkpoint at the run's end (full replay + write) wall / peak RSS",
            f"{fmt(c['wall_s'])} s / {c['max_rss_mb']} MB",
        )
    cmd = [PY, "-m", "batch_export", "status", str(out_dir), "--json"]
    m = measure(cmd, workdir=work, name="status", env=clean_env(), timeout=cfg.timeout)
    res.raw.update(
        rows=rows, build_s=build, journal_bytes=(out_dir / "journal.jsonl").stat().st_size, run=m
    )
    report = m.get("stdout_json") or {}
    if m["returncode"] != 0 or report.get("done") != rows:
        res.add(
            label,
            "completed",
            f"exit {m['returncode']}, done {report.get('done')}/{rows}",
            f"exit 0, done {rows}",
            False,
        )
    # The goals are the 1,000,000-record ones (issue 17); a 10M run states its figures.
    goal = rows <= 1_000_000
    wall, rss = m["wall_s"], m["max_rss_mb"]
    res.add(
        label,
        "status --json wall time",
        f"{fmt(wall)} s",
        "<= 3 s" * goal,
        wall <= 3 if goal else None,
    )
    res.add(
        label,
        "status CPU / peak RSS",
        f"{m['cpu_s']} s / {rss} MB",
        "<= 150 MB" * goal,
        rss <= 150 if goal else None,
    )
    # A resume's own steps before its first request (read the CSV, replay, plan).
    cmd = [PY, str(BENCH / "resume_replay.py"), str(out_dir), str(work / "ids.csv")]
    r = measure(cmd, workdir=work, name="resume", env=clean_env(), timeout=cfg.timeout)
    res.raw["resume"] = r
    steps = r.get("stdout_json") or {}
    if r["returncode"] != 0 or steps.get("done") != rows:
        res.add(label, "resume completed", f"exit {r['returncode']}, {steps}", "exit 0", False)
    res.add(
        label,
        "resume (read CSV, replay, plan) wall / peak RSS",
        f"{fmt(r['wall_s'])} s / {r['max_rss_mb']} MB",
        "<= 150 MB" * goal,
        r["max_rss_mb"] <= 150 if goal else None,
    )
    res.add(
        label,
        "resume steps: read / replay / plan",
        f"{steps.get('read_s')} s / {steps.get('replay_s')} s / {steps.get('plan_s')} s",
    )
    # The same status without the checkpoint (a killed first run leaves none): the full replay.
    (out_dir / "state.checkpoint").unlink(missing_ok=True)
    cmd = [PY, "-m", "batch_export", "status", str(out_dir), "--json"]
    f = measure(cmd, workdir=work, name="status-full", env=clean_env(), timeout=cfg.timeout)
    res.raw["status_full_replay"] = f
    res.add(
        label,
        "status --json without a checkpoint: wall / CPU / peak RSS",
        f"{fmt(f['wall_s'])} s / {f['cpu_s']} s / {f['max_rss_mb']} MB",
    )
    return res


#: ``python -c`` it, DIR: write DIR's checkpoint as a run's end does (``orchestrate._report``)
_WRITE_CHECKPOINT = (
    "import sys; from pathlib import Path; "
    "from batch_export.evidence.checkpoint import write_checkpoint; "
    "write_checkpoint(Path(sys.argv[1]), 'profile')"
)


def scenario_one_at_a_time(cfg: Config, work: Path) -> Result:
    """4. The documented sequential usage vs the exporter."""
    res = Result("one-at-a-time")
    n = cfg.n(50, 2)
    delay = "0.1:0.3" if cfg.smoke else "0.5:3"
    poll = 0.25 if cfg.smoke else 1.0
    sim_opts = ["--rate-limit", "0", "--prepare-delay", delay, "--export-size", "20k"]
    csv_path = write_ids(work / "ids.csv", n)
    with Simulator(work, sim_opts, name="sim-seq") as sim:
        cmd = client_command(
            "one_at_a_time.py",
            sim,
            csv_path,
            *("--out", str(work / "seq-out"), "--poll-interval", str(poll)),
        )
        seq = measure(cmd, workdir=work, name="sequential", env=clean_env(), timeout=cfg.timeout)
        seq["simulator"] = {"stats": sim.stats()}
    with Simulator(work, sim_opts, name="sim-exp") as sim:
        exp = run_exporter(
            sim, csv_path, work / "out", [], workdir=work, name="exporter", timeout=cfg.timeout
        )
        exp["simulator"] = {"stats": sim.stats()}
    res.raw.update(n=n, prepare_delay=delay, poll_interval=poll, sequential=seq, exporter=exp)
    if seq["returncode"] != 0:
        res.add("one-at-a-time", "completed", f"exit {seq['returncode']}", "exit 0", False)
    check_run(res, "exporter", exp, n)
    speedup = seq["wall_s"] / exp["wall_s"]
    res.add(
        "one-at-a-time", f"wall time ({n} targets, poll {poll:g} s)", f"{fmt(seq['wall_s'], 1)} s"
    )
    res.add("exporter", f"wall time ({n} targets)", f"{fmt(exp['wall_s'], 1)} s")
    res.add("exporter vs one-at-a-time", "speed-up", f"{fmt(speedup, 1)}x", "> 1", speedup > 1)
    return res


def scenario_long_tail(cfg: Config, work: Path) -> Result:
    """5. Long-tail preparation with a small window (--max-pending 60)."""
    res = Result("long-tail")
    n = cfg.n(2000, 20)
    rate, window = 100.0, (10 if cfg.smoke else 60)
    low, high, p, factor = (0.05, 0.2, 0.05, 5.0) if cfg.smoke else (0.2, 1.0, 0.05, 20.0)
    spec = f"longtail:{low:g}:{high:g}:{p:g}:{factor:g}"
    max_delay = high * factor
    # the simulator stretches an unlucky draw by uniform(factor/2, factor): mean 0.75 x factor
    mean_delay = (low + high) / 2 * ((1 - p) + p * 0.75 * factor)
    ideal_rate = 2 * n / rate + max_delay
    ideal_window = max(ideal_rate, n * mean_delay / window)
    sim_opts = [
        "--rate-limit",
        str(rate),
        "--burst",
        "20",
        "--prepare-delay",
        spec,
        "--export-size",
        "20k",
    ]
    csv_path = write_ids(work / "ids.csv", n)
    with Simulator(work, sim_opts) as sim:
        m = run_exporter(
            sim,
            csv_path,
            work / "out",
            ["--rate", str(rate), "--max-pending", str(window)],
            workdir=work,
            name="exporter",
            timeout=cfg.timeout,
        )
        stats = sim.stats()
    m["simulator"] = {"rusage": sim.rusage, "stats": stats}
    res.raw.update(
        n=n,
        prepare_delay=spec,
        max_pending=window,
        mean_delay_s=mean_delay,
        max_delay_s=max_delay,
        ideal_rate_s=ideal_rate,
        ideal_window_s=ideal_window,
        run=m,
    )
    label = f"--rate {rate:g} --max-pending {window}"
    check_run(res, label, m, n)
    per = stats["requests_total"] / n
    res.add(label, "requests per export", fmt(per), "<= 2.10", per <= 2.10)
    res.add(label, "requests: submits / polls", request_split(stats))
    res.add(label, "429s received", str(stats["responses_429"]))
    res.add(label, "wall time", f"{fmt(m['wall_s'], 1)} s")
    res.add(label, f"ideal A = 2N/R + max delay ({fmt(max_delay, 1)} s)", f"{fmt(ideal_rate, 1)} s")
    res.add(label, "efficiency vs ideal A", fmt(ideal_rate / m["wall_s"]))
    res.add(
        label,
        f"ideal B = max(A, N x mean prep ({fmt(mean_delay)} s) / max-pending)",
        f"{fmt(ideal_window, 1)} s",
    )
    res.add(label, "efficiency vs ideal B (window-bound)", fmt(ideal_window / m["wall_s"]))
    return res


# --------------------------------------------------------------------------- object storage


class ObjectStore:
    """A SeaweedFS S3 server for the object-storage scenarios (``tests/seaweed.py``)."""

    def __init__(self, work: Path) -> None:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from tests.seaweed import make_bucket, start_seaweed

        self.server = start_seaweed(work / "seaweed")
        self.bucket = "bench"
        make_bucket(self.server, self.bucket, lock=True)

    def args(self, prefix: str) -> list[str]:
        return ["--to", f"s3://{self.bucket}/{prefix}", "--s3-endpoint-url", self.server.endpoint]

    def env(self, sim: Simulator) -> dict[str, str]:
        return clean_env(COPERNICA_ACCESS_TOKEN=sim.token, **self.server.env())

    def stop(self) -> None:
        self.server.stop()


def run_into_bucket(
    store: ObjectStore,
    sim: Simulator,
    csv_path: Path,
    work: Path,
    prefix: str,
    extra: list[str],
    *,
    name: str,
    timeout: float,
) -> dict[str, Any]:
    """The exporter against ``sim``, its exports into the bucket under ``prefix``.

    ``max_rss_mb`` is the exporter's own VmHWM here: ru_maxrss of a child
    starts at the parent's peak (Linux keeps it across exec), and this
    harness holds a botocore client of its own.
    """
    report = work / f"{name}.vmhwm"
    cmd = [PY, "-c", _VMHWM_WRAPPER, str(report), "run", str(csv_path)]
    cmd += ["--out", str(work / f"state-{name}"), "--api-url", sim.url, *store.args(prefix)]
    cmd += [*extra, "--no-progress", "--json"]
    m = measure(cmd, workdir=work, name=name, env=store.env(sim), timeout=timeout)
    if report.exists():
        m["ru_maxrss_mb"] = m["max_rss_mb"]
        m["max_rss_mb"] = round(int(report.read_text()) / 1024, 1)
    return m


#: ``python -m batch_export`` that writes its VmHWM (KiB) to argv[1] when it exits
_VMHWM_WRAPPER = """
import atexit, runpy, sys
report = sys.argv.pop(1)

def peak():
    with open("/proc/self/status") as status, open(report, "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))

atexit.register(peak)
sys.argv[0] = "batch-export"
runpy.run_module("batch_export", run_name="__main__", alter_sys=True)
"""


def scenario_s3_overhead(cfg: Config, work: Path) -> Result:
    """4a. The overhead scenario into a bucket, next to local files: exports/s, CPU per export."""
    res = Result("s3-overhead")
    n = cfg.n(5000, 40)
    sim_opts = ["--rate-limit", "0", "--prepare-delay", "0", "--export-size", "5k"]
    csv_path = write_ids(work / "ids.csv", n)
    store = ObjectStore(work)
    runs: dict[str, dict[str, Any]] = {}
    try:
        with Simulator(work, sim_opts, name="sim-local") as sim:
            runs["local files"] = run_exporter(
                sim,
                csv_path,
                work / "out",
                ["--concurrency", "16"],
                workdir=work,
                name="local",
                timeout=cfg.timeout,
            )
        for label, extra in (("s3", []), ("s3 + retention", ["--retention-days", "1"])):
            with Simulator(work, sim_opts, name=f"sim-{label}") as sim:
                runs[label] = run_into_bucket(
                    store,
                    sim,
                    csv_path,
                    work,
                    label.replace(" ", "").replace("+", "-"),
                    ["--concurrency", "16", *extra],
                    name=label.replace(" ", "_"),
                    timeout=cfg.timeout,
                )
    finally:
        store.stop()
    res.raw.update(n=n, runs=runs)
    for label, run in runs.items():
        check_run(res, label, run, n)
        res.add(label, "exports/s", fmt(n / run["wall_s"], 1))
        res.add(label, "CPU s per 1000 exports", fmt(1000 * run["cpu_s"] / n, 3))
        res.add(label, "peak RSS", f"{run['max_rss_mb']} MB")
    return res


def scenario_s3_1g(cfg: Config, work: Path) -> Result:
    """4b. One 1 GB export streamed into a bucket (multipart): peak RSS and MB/s."""
    res = Result("s3-1g")
    size = cfg.big_export_size or ("20m" if cfg.smoke else "1g")
    sim_opts = ["--prepare-delay", "0", "--export-size", size, "--rate-limit", "0"]
    csv_path = write_ids(work / "ids.csv", 1)
    store = ObjectStore(work)
    try:
        with Simulator(work, sim_opts) as sim:
            m = run_into_bucket(
                store, sim, csv_path, work, "big", [], name="exporter", timeout=cfg.timeout
            )
            stats = sim.stats()
    finally:
        store.stop()
    big_export_rows(res, size, m, stats, limit_mb=100)
    return res


def scenario_expiring(cfg: Config, work: Path) -> Result:
    """6. Files expiring 1.5 s after ready (benchmarks/polling_scenarios.py)."""
    # polling_scenarios imports this module's helpers: run as a script this
    # module is __main__, so it is made importable as "run" (one copy, one CODE_DIR).
    sys.modules.setdefault("run", sys.modules[__name__])
    from polling_scenarios import scenario_expiring as expiring

    return expiring(cfg, work)


def scenario_limit_unknown(cfg: Config, work: Path) -> Result:
    """7a. The limit left to find, then remembered (benchmarks/limit_scenarios.py)."""
    sys.modules.setdefault("run", sys.modules[__name__])  # one copy of this module, as above
    from limit_scenarios import scenario_limit_unknown as unknown

    return unknown(cfg, work)


def scenario_limit_strict(cfg: Config, work: Path) -> Result:
    """7b. A strict 20 req/s burst 5 limit as 429, 503 or 504 (benchmarks/limit_scenarios.py)."""
    sys.modules.setdefault("run", sys.modules[__name__])
    from limit_scenarios import scenario_limit_strict as strict

    return strict(cfg, work)


SCENARIOS: dict[str, Callable[[Config, Path], Result]] = {
    "rate-bound": scenario_rate_bound,
    "overhead": scenario_overhead,
    "memory-1g": scenario_memory_1g,
    "memory-csv": scenario_memory_csv,
    "memory-resume": scenario_memory_resume,
    "one-at-a-time": scenario_one_at_a_time,
    "long-tail": scenario_long_tail,
    "expiring": scenario_expiring,
    "limit-unknown": scenario_limit_unknown,
    "limit-strict": scenario_limit_strict,
    "s3-overhead": scenario_s3_overhead,
    "s3-1g": scenario_s3_1g,
}
ALIASES = {
    "memory": ["memory-1g", "memory-csv", "memory-resume"],
    "s3": ["s3-overhead", "s3-1g"],
    "limits": ["limit-unknown", "limit-strict"],
}


# --------------------------------------------------------------------------- output


def markdown_table(results: list[Result]) -> str:
    """Every row of every result as one markdown table."""
    lines = [
        "| scenario | run | figure | measured | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        for row in result.rows:
            met = "" if row.met is None else ("yes" if row.met else "**NO**")
            lines.append(
                f"| {row.scenario} | {row.run} | {row.figure} | {row.value} | {row.goal} | {met} |"
            )
    lines.append("")
    lines.append("| scenario | took |")
    lines.append("|---|---|")
    lines.extend(f"| {r.scenario} | {fmt(r.seconds, 1)} s |" for r in results)
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Benchmark batch-export against its simulator (see benchmarks/README.md)."
    )
    names = [*SCENARIOS, *ALIASES]
    parser.add_argument(
        "--scenario",
        action="append",
        choices=names,
        help="Run only this scenario (repeatable; 'memory' = all three parts).",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="Every scenario tiny, to check the harness works (< 30 s).",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="Multiply every target count by this factor (default 1).",
    )
    parser.add_argument("--rows", type=int, help="Rows of the memory-csv CSV (default 1,000,000).")
    parser.add_argument(
        "--journal-rows",
        type=int,
        help="Done records in the memory-resume journal (default 1,000,000).",
    )
    parser.add_argument("--big-export-size", help="Size of the memory-1g export (default 1g).")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="Seconds any one process may run (default 7200; 60 with --smoke).",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=DEFAULT_RESULTS,
        help="Where <scenario>.json goes (default benchmarks/results).",
    )
    parser.add_argument(
        "--code-dir",
        type=Path,
        default=ROOT,
        help="Import batch_export from this directory instead of this checkout "
        "(e.g. a frozen copy while others edit the tree).",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the temporary work directories.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios, print the table, write the JSON results."""
    global CODE_DIR
    args = parse_args(argv)
    CODE_DIR = args.code_dir.resolve()
    chosen: list[str] = []
    for name in args.scenario or list(SCENARIOS):
        for real in ALIASES.get(name, [name]):
            if real not in chosen:
                chosen.append(real)
    cfg = Config(
        smoke=args.smoke,
        scale=args.scale,
        rows=args.rows,
        journal_rows=args.journal_rows,
        big_export_size=args.big_export_size,
        timeout=args.timeout or (60.0 if args.smoke else 7200.0),
    )
    args.results_dir.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    failed = False
    # Work directories are removed only after the last scenario: ext4 skips inodes
    # freed within the last ~30 s when it allocates new ones, so deleting one
    # scenario's thousands of files makes the next scenario's file creation
    # measurably dearer in kernel CPU (perf: ext4 recently_deleted/find_inode_bit).
    leftovers: list[Path] = []
    for name in chosen:
        work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        leftovers.append(work)
        print(f"== {name} (work dir {work}) ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            result = SCENARIOS[name](cfg, work)
        except Exception as exc:  # a broken scenario must not hide the others
            failed = True
            result = Result(name)
            result.add("harness", "error", f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300])
            result.raw["error"] = repr(exc)
        result.seconds = time.perf_counter() - start
        result.raw.update(
            scenario=name,
            smoke=cfg.smoke,
            scale=cfg.scale,
            code_dir=str(CODE_DIR),
            took_s=round(result.seconds, 1),
            finished_at=time.time(),
        )
        result.raw["table_rows"] = [row.__dict__ for row in result.rows]
        (args.results_dir / f"{name}.json").write_text(
            json.dumps(result.raw, indent=2, default=str)
        )
        print(f"== {name} took {result.seconds:.1f} s", file=sys.stderr, flush=True)
        results.append(result)
    print(markdown_table(results))
    if not args.keep:
        for work in leftovers:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
