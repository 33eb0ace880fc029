"""Ctrl-C after the pipeline ended, while the evidence is written: no traceback, no half archive.

The child patches one evidence step of ``run/orchestrate.py`` to send SIGINT
to its own process as the step starts: the signal arrives at exactly that
moment, every time (no timing, no sleep).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import SimThread, StartSimulator, api_args, run_cli, run_subprocess, write_ids

#: ``python -c`` child: ``STEP CLI-ARGS…`` runs the CLI; ``STEP --api CSV OUT URL`` calls export()
_CHILD = """
import os, signal, sys
import batch_export.run.orchestrate as orchestrate

step = sys.argv.pop(1)
original = getattr(orchestrate, step)

def interrupted(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    return original(*args, **kwargs)

setattr(orchestrate, step, interrupted)
if sys.argv[1] == "--api":
    from batch_export import RetryPolicy, export
    csv, out, url = sys.argv[2:5]
    result = export(csv, out, token=os.environ["COPERNICA_ACCESS_TOKEN"], api_url=url,
                    retry=RetryPolicy(instant=True))
    print("result", result.exit_code, result.interrupted, flush=True)
else:
    from batch_export.cli import main
    sys.argv[0] = "batch-export"
    main()
"""


def _run_args(sim: SimThread, tmp_path: Path) -> tuple[list[str], Path]:
    ids = write_ids(tmp_path / "ids.csv", range(1, 11))
    out = tmp_path / "out"
    return ["run", str(ids), "--out", str(out), *api_args(sim), "--rate", "200"], out


def test_sigint_while_the_manifest_is_written_stops_like_a_ctrl_c_mid_run(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """Exit 130 and "stopped by SIGINT …; rerun the same command to resume"; verify passes."""
    sim = simulator()
    args, out = _run_args(sim, tmp_path)
    proc = run_subprocess(args, sim.token, python_args=("-c", _CHILD, "write_manifest"))
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "stopped by SIGINT after 10 of 10 targets" in proc.stderr
    assert "rerun the same command to resume" in proc.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert (summary["interrupted"], summary["exit_code"]) == ("SIGINT", 130)
    verified = run_cli(["verify", str(out)], None)
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    again = run_cli(args, sim.token)
    assert again.exit_code == 0, again.stderr


@pytest.mark.parametrize("step", ["seal_run", "write_checkpoint"])
def test_sigint_after_the_summary_is_written_lets_the_run_finish(
    simulator: StartSimulator, tmp_path: Path, step: str
) -> None:
    """The summary already says finished: the seal is completed, the exit is the summary's."""
    sim = simulator()
    args, out = _run_args(sim, tmp_path)
    proc = run_subprocess(args, sim.token, python_args=("-c", _CHILD, step))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "SIGINT received: the run's evidence was written first" in proc.stderr
    verified = run_cli(["verify", str(out)], None)
    assert verified.exit_code == 0, verified.stdout + verified.stderr


def test_sigint_while_the_manifest_is_written_by_export_returns_interrupted(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """The Python API returns exit 130 / "SIGINT" instead of raising KeyboardInterrupt."""
    sim = simulator()
    csv = write_ids(tmp_path / "ids.csv", range(1, 11))
    out = tmp_path / "out"
    proc = run_subprocess(
        ["--api", str(csv), str(out), sim.base_url],
        sim.token,
        python_args=("-c", _CHILD, "write_manifest"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.splitlines()[-1] == "result 130 SIGINT"
    assert run_cli(["verify", str(out)], None).exit_code == 0
