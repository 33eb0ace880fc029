"""The synchronous Python API: ``export(…)``, its ``on_progress`` callback, and the README's example."""

from __future__ import annotations

import ast
import logging
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import batch_export
from batch_export import ConfigError, ProgressSnapshot, RetryPolicy, RunResult, export

from .conftest import REPO, SAMPLES, StartSimulator, read_manifest, spawn_cli, write_ids

README = REPO / "README.md"


def _python_blocks() -> list[str]:
    """The ```python blocks of the README's "Python API" section, in order."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Python API\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "README.md has no '## Python API' section"
    return re.findall(r"^```python\n(.*?)^```", section.group(1), re.M | re.S)


def _export_from(sim_url: str, token: str, csv: Path, out: Path, **options: Any) -> RunResult:
    """``export`` pointed at a fixture simulator, retries instant (the simulator's faults are quick)."""
    return export(
        csv,
        out,
        token=token,
        api_url=sim_url,
        retry=RetryPolicy(instant=True),
        **options,
    )


def test_export_simulate_exports_the_csv(tmp_path: Path) -> None:
    """``export(simulate=True)`` runs the demo platform like ``run --simulate`` and returns the counts."""
    csv = write_ids(tmp_path / "ids.csv", range(1001, 1021))
    out = tmp_path / "out"
    result = export(csv, out, simulate=True)
    assert isinstance(result, RunResult)
    assert result.exit_code == 0
    assert result.interrupted is None
    assert (result.counts.done, result.counts.failed, result.counts.pending) == (20, 0, 0)
    assert result.out_dir == out
    assert [entry["status"] for entry in read_manifest(out)] == ["done"] * 20


def test_on_progress_sees_saved_grow_and_the_final_counts(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """``on_progress`` is called during the run with growing ``saved`` and last with every target done."""
    sim = simulator(prepare_delay="0.1:0.6")
    csv = write_ids(tmp_path / "ids.csv", range(1, 81))
    calls: list[ProgressSnapshot] = []
    result = _export_from(
        sim.base_url,
        sim.token,
        csv,
        tmp_path / "out",
        on_progress=calls.append,
        progress_interval=0.05,
        max_pending=20,
    )
    assert result.exit_code == 0
    assert len(calls) >= 3
    saved = [snapshot.saved for snapshot in calls]
    assert saved == sorted(saved)
    assert any(0 < value < 80 for value in saved[:-1]), saved
    final = calls[-1]
    assert final.done == final.total == 80
    assert (final.saved, final.failed, final.remaining) == (80, 0, 0)
    assert final.bytes_saved == result.counts.bytes


def test_a_callback_that_raises_does_not_stop_the_run(
    simulator: StartSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken ``on_progress`` is logged and skipped: the run still exports every target."""
    sim = simulator()
    csv = write_ids(tmp_path / "ids.csv", range(1, 21))
    calls = 0

    def broken(snapshot: ProgressSnapshot) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("the caller's bug")

    with caplog.at_level(logging.WARNING):
        result = _export_from(
            sim.base_url,
            sim.token,
            csv,
            tmp_path / "out",
            on_progress=broken,
            progress_interval=0.05,
        )
    assert result.exit_code == 0
    assert result.counts.done == 20
    assert calls >= 1
    assert "the caller's bug" in caplog.text


def test_export_runs_in_a_worker_thread(simulator: StartSimulator, tmp_path: Path) -> None:
    """From a thread that is not the main one, ``export`` runs (no signal handlers) and returns."""
    sim = simulator()
    csv = write_ids(tmp_path / "ids.csv", range(1, 11))
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(_export_from, sim.base_url, sim.token, csv, tmp_path / "out")
        result = future.result(timeout=120)
    assert result.exit_code == 0
    assert result.counts.done == 10


def test_handle_signals_true_in_a_worker_thread_is_refused(tmp_path: Path) -> None:
    """Asking for signal handlers off the main thread is a ConfigError, raised before any work."""
    csv = write_ids(tmp_path / "ids.csv", [1])
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(export, csv, tmp_path / "out", simulate=True, handle_signals=True)
        with pytest.raises(ConfigError, match="main thread"):
            future.result(timeout=60)
    assert not (tmp_path / "out").exists()


#: a script that calls ``export`` in its main thread and prints each snapshot and the result
_SCRIPT = """
import sys
from batch_export import export

def show(progress):
    print("progress", progress.saved, flush=True)

result = export(sys.argv[1], sys.argv[2], simulate=True, on_progress=show, progress_interval=0.1)
print("result", result.exit_code, result.interrupted, flush=True)
"""


def test_ctrl_c_in_a_script_stops_the_run_resumably(tmp_path: Path) -> None:
    """SIGINT to a script's ``export`` returns exit 130 / "SIGINT"; ``export`` again finishes it."""
    csv = write_ids(tmp_path / "ids.csv", range(1001, 1061))
    out = tmp_path / "out"
    with spawn_cli([str(csv), str(out)], None, python_args=("-c", _SCRIPT)) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:  # the run is under way once the first snapshot arrives
            if line.startswith("progress"):
                proc.send_signal(signal.SIGINT)
                break
        rest, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert rest.splitlines()[-1] == "result 130 SIGINT", rest + stderr
    again = export(csv, out, simulate=True)
    assert (again.exit_code, again.counts.done) == (0, 60)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurency": 4}, r"no option 'concurency' \(did you mean concurrency\?\)"),
        ({"concurrency": "16"}, r"concurrency='16' should be int"),
        ({"rate": True}, r"rate=True should be float"),
        ({"concurrency": 0}, r"concurrency must be at least 1"),
        ({"outage_timeout": 0}, r"outage timeout must be greater than 0"),
        ({"kind": "people"}, r"kind='people' is not one of 'profile'"),
        ({"api": None}, r"export\(\) sets api from its own arguments"),
        ({"progress_interval": 0}, r"progress_interval must be greater than 0"),
        ({"token": "t"}, r"simulate=True .* leave out token"),
    ],
)
def test_bad_options_raise_config_error(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    """An unknown name, a wrong type or an impossible value is a ConfigError that says which."""
    csv = write_ids(tmp_path / "ids.csv", [1])
    with pytest.raises(ConfigError, match=message):
        export(csv, tmp_path / "out", simulate=True, **options)
    assert not (tmp_path / "out").exists()


def test_export_without_a_token_says_how_to_fix_it(tmp_path: Path) -> None:
    """Without ``token=`` and without ``simulate=True``, the ConfigError names both ways out."""
    with pytest.raises(ConfigError, match=r"needs token=.*or simulate=True"):
        export(SAMPLES / "profiles.csv", tmp_path / "out")


async def test_export_inside_an_event_loop_points_to_run_export(tmp_path: Path) -> None:
    """Called where a loop is running, ``export`` refuses and names ``run_export`` instead."""
    with pytest.raises(ConfigError, match=r"await run_export"):
        export(SAMPLES / "profiles.csv", tmp_path / "out", simulate=True)


def test_readme_example_runs_as_written() -> None:
    """The README's first Python API block, run verbatim from the repository root, exports all 300."""
    code = _python_blocks()[0]
    assert "simulate=True" in code
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    progress = [line for line in lines if re.fullmatch(r"\d+/300 done, \d+ failed, .*", line)]
    assert len(progress) >= 2, proc.stdout
    assert progress[-1].startswith("300/300 done, 0 failed"), proc.stdout
    done = [int(line.split("/", 1)[0]) for line in progress]
    assert done == sorted(done)
    assert re.fullmatch(r"0 300 exported into .+", lines[-1]), proc.stdout


def test_readme_async_example_uses_only_the_public_api() -> None:
    """The README's async block is valid Python that imports only names ``batch_export`` exports."""
    blocks = _python_blocks()
    assert len(blocks) == 2
    for code in blocks:
        tree = ast.parse(code)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "batch_export":
                for alias in node.names:
                    assert alias.name in batch_export.__all__, alias.name
    # the async block hands run_export a RunOptions (however it is laid out)
    calls = [node for node in ast.walk(ast.parse(blocks[1])) if isinstance(node, ast.Call)]
    assert any(
        isinstance(call.func, ast.Name)
        and call.func.id == "run_export"
        and call.args
        and isinstance(call.args[0], ast.Call)
        and isinstance(call.args[0].func, ast.Name)
        and call.args[0].func.id == "RunOptions"
        for call in calls
    )
