"""The options people type: environment variables, run's help sections, --simulate for ids, hints."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from batch_export.cli import cli
from batch_export.cli.run_options import SECTIONS
from batch_export.run.options import RunOptions
from batch_export.simulator import SimulatorConfig

from .conftest import StartSimulator, read_manifest, run_cli, write_ids

ROOT = Path(__file__).resolve().parent.parent
# the module, not the `run` command that batch_export.cli's attribute of that name is
run_module = importlib.import_module("batch_export.cli.run")
PLATFORM_ENV = ("COPERNICA_API_URL", "COPERNICA_API_VERSION", "COPERNICA_AUTH_URL")


def _help(*command: str, width: int = 80) -> str:
    """``batch-export COMMAND --help`` as a terminal ``width`` columns wide shows it."""
    result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.output


def test_platform_env_vars_reach_the_run(simulator: StartSimulator, tmp_path: Path) -> None:
    """COPERNICA_API_URL/_API_VERSION/_AUTH_URL point a run at the simulator with no options."""
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", [1, 2, 3])
    result = run_cli(
        ["run", str(ids), "--out", str(tmp_path / "out")],
        sim.token,
        COPERNICA_API_URL=sim.base_url,
        COPERNICA_API_VERSION="4",
        COPERNICA_AUTH_URL=sim.auth_url,
    )
    assert result.exit_code == 0, result.stderr
    assert [e["status"] for e in read_manifest(tmp_path / "out")] == ["done"] * 3
    requests = sim.stats()["requests"]
    assert requests["POST authenticate"] >= 1  # v4 came from the environment, and its auth URL


def test_token_file_env_var_is_read(simulator: StartSimulator, tmp_path: Path) -> None:
    """COPERNICA_TOKEN_FILE names the token file when neither option nor token variable is set."""
    sim = simulator()
    token_file = tmp_path / "token"
    token_file.write_text(sim.token + "\n", encoding="utf-8")
    ids = write_ids(tmp_path / "ids.csv", [5])
    result = run_cli(
        ["run", str(ids), "--out", str(tmp_path / "out")],
        None,
        COPERNICA_API_URL=sim.base_url,
        COPERNICA_TOKEN_FILE=str(token_file),
    )
    assert result.exit_code == 0, result.stderr


def test_command_line_beats_the_environment(simulator: StartSimulator, tmp_path: Path) -> None:
    """An --api-url on the command line wins over COPERNICA_API_URL."""
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", [5])
    result = run_cli(
        ["run", str(ids), "--out", str(tmp_path / "out"), "--api-url", sim.base_url],
        sim.token,
        COPERNICA_API_URL="http://127.0.0.1:9",  # the discard port: nothing answers there
    )
    assert result.exit_code == 0, result.stderr


def test_ids_reads_the_same_env_vars(simulator: StartSimulator, tmp_path: Path) -> None:
    """ids takes the platform from the same variables as run (here v4 and its auth URL)."""
    sim = simulator(databases={"3": 12})
    result = run_cli(
        ["ids", "--database", "3"],
        sim.token,
        COPERNICA_API_URL=sim.base_url,
        COPERNICA_API_VERSION="4",
        COPERNICA_AUTH_URL=sim.auth_url,
    )
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 13
    assert sim.stats()["requests"]["POST authenticate"] >= 1


@pytest.mark.parametrize("command", ["run", "ids"])
def test_help_shows_every_platform_env_var(command: str) -> None:
    """run --help and ids --help name each platform option's environment variable."""
    text = " ".join(_help(command).split())  # undo the wrapping
    for name in (*PLATFORM_ENV, "COPERNICA_TOKEN_FILE", "COPERNICA_ACCESS_TOKEN"):
        assert name in text, name
    assert "env var: COPERNICA_API_URL" in text


def _definitions(text: str, first_section: str) -> list[str]:
    """The option names that start a definition line of a help page's sections."""
    sections = text.split(f"\n{first_section}:\n", 1)[1]
    return re.findall(r"^ {2}(?:-\w, )?(--[\w-]+)", sections, re.M)


def test_run_help_is_in_sections_with_every_option_once() -> None:
    """run --help shows its sections in order, and each of run's options in exactly one."""
    text = _help("run")
    titles = re.findall(r"^(\S[^:\n]*):$", text, re.M)
    assert titles == [*SECTIONS, "Other options"]
    command = cli.commands["run"]
    longest = [
        max(param.opts, key=len) for param in command.params if isinstance(param, click.Option)
    ]
    shown = _definitions(text, SECTIONS[0])
    assert sorted(shown) == sorted([*longest, "--help"])
    for option, section in [
        ("--sign-key", "Output"),
        ("--stats-interval", "Logging"),
        ("--metrics-file", "Logging"),
        ("--rate", "Pacing"),
        ("--to", "Object storage"),
        ("--push-listen", "Push mode"),
        ("--kind", "Input"),
        ("--api-url", "Platform"),
    ]:
        body = text.split(f"\n{section}:\n", 1)[1].split("\n\n", 1)[0]
        assert re.search(rf"^ {{2}}{option}\b", body, re.M), (option, section)


@pytest.mark.parametrize("command", ["run", "ids"])
def test_help_fits_an_80_column_terminal(command: str) -> None:
    """No line of run --help or ids --help is wider than 80 columns in an 80-column terminal."""
    text = _help(command)
    assert "Example" in text
    assert [line for line in text.splitlines() if len(line) > 80] == []


def _captured(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> RunOptions:
    """The RunOptions ``batch-export run ARGS`` builds (the run itself replaced by a stub)."""
    seen: list[RunOptions] = []

    async def capture(options: RunOptions) -> Any:
        seen.append(options)
        raise SystemExit(0)

    monkeypatch.setattr(run_module, "run_export", capture)
    result = run_cli(["run", *args], "token-x")
    assert result.exit_code == 0, result.stderr
    assert len(seen) == 1
    return seen[0]


def test_stats_interval_and_metrics_file_reach_run_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--stats-interval and --metrics-file land in RunOptions; without a terminal the default is 60 s."""
    ids = str(write_ids(tmp_path / "ids.csv", [1]))
    base = [ids, "--out", str(tmp_path / "out")]
    assert _captured(monkeypatch, base).stats_interval == 60.0  # CliRunner's stderr: no terminal
    metrics = tmp_path / "m.prom"
    given = _captured(monkeypatch, [*base, "--stats-interval", "0", "--metrics-file", str(metrics)])
    assert given.stats_interval == 0.0 and given.metrics_file == metrics
    bad = run_cli(["run", *base, "--stats-interval", "-1"], "token-x")
    assert bad.exit_code == 2 and "--stats-interval" in bad.stderr


def _readme_simulate_flow() -> list[list[str]]:
    """The README's `ids … --simulate` / `run … --simulate` lines, as argument lists."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Listing every ID", 1)[1].split("\n## ", 1)[0]
    lines = [
        line.strip()
        for line in section.splitlines()
        if line.startswith("batch-export ") and "--simulate" in line
    ]
    return [shlex.split(line, comments=True)[1:] for line in lines]


def test_readme_ids_then_run_flow_runs_as_written_with_simulate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ids --database 42 -o profiles.csv --simulate` lists the demo IDs; `run --simulate` exports them all."""
    flow = _readme_simulate_flow()
    assert [args[0] for args in flow] == ["ids", "run"]
    monkeypatch.chdir(tmp_path)  # the README's relative paths, in a scratch directory
    listed = run_cli(flow[0], None)
    assert listed.exit_code == 0, listed.stderr
    rows = Path(flow[0][flow[0].index("-o") + 1]).read_text(encoding="utf-8").splitlines()
    count = SimulatorConfig().databases["42"]
    assert rows == ["profile_id", *(str(4_200_001 + i) for i in range(count))]
    exported = run_cli(flow[1], None, BATCH_EXPORT_INSTANT_RETRIES="1")
    assert exported.exit_code == 0, exported.stderr
    out = Path(flow[1][flow[1].index("--out") + 1])
    entries = read_manifest(out)
    assert [e["status"] for e in entries] == ["done"] * count
    assert sorted(e["id"] for e in entries) == sorted(rows[1:])


def test_ids_simulate_lists_the_demo_collection() -> None:
    """ids --collection 7 --simulate lists the demo collection, whatever platform the environment names."""
    proxy = {"COPERNICA_API_URL": "http://127.0.0.1:9", "COPERNICA_API_VERSION": "4"}
    result = run_cli(["ids", "--collection", "7", "--simulate"], None, **proxy)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "subprofile_id"
    assert len(lines) - 1 == SimulatorConfig().collections["7"]


@pytest.mark.parametrize(
    ("header", "cell", "hint"),
    [
        ("subprofile_id", "5", "--kind subprofile"),
        ("email", "a@example.com", "--kind email"),
        ("Name;E-mail", "Ann;a@example.com", "--kind email"),
    ],
)
def test_missing_id_column_suggests_the_kind(
    tmp_path: Path, header: str, cell: str, hint: str
) -> None:
    """A subprofile or email CSV read as profiles says which --kind to pass, exit 2."""
    csv = tmp_path / "in.csv"
    csv.write_text(f"{header}\n{cell}\n", encoding="utf-8")
    result = run_cli(["run", str(csv), "--out", str(tmp_path / "out"), "--simulate"], None)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "no profile ID column" in message and f"pass {hint}" in message, message
    assert "--id-column" in message


def test_headerless_email_csv_suggests_kind_email(tmp_path: Path) -> None:
    """A headerless list of addresses read as profiles suggests --kind email too."""
    csv = tmp_path / "in.csv"
    csv.write_text("a@example.com\nb@example.com\n", encoding="utf-8")
    result = run_cli(["run", str(csv), "--out", str(tmp_path / "out"), "--simulate"], None)
    assert result.exit_code == 2
    assert "pass --kind email" in result.stderr


def _v4_proxy_run(tmp_path: Path, *extra: str, **env: str) -> str:
    """stderr of a v4 run against a loopback --api-url whose input does not exist (exit 2)."""
    result = run_cli(
        [
            "run",
            str(tmp_path / "missing.csv"),
            "--out",
            str(tmp_path / "out"),
            "--api-version",
            "4",
            "--api-url",
            "http://127.0.0.1:9",
            *extra,
        ],
        "token-x",
        **env,
    )
    assert result.exit_code == 2
    return result.stderr


def test_default_auth_url_with_a_proxy_api_url_is_refused(tmp_path: Path) -> None:
    """v4, a non-platform --api-url and the defaulted --auth-url: refused before anything else."""
    stderr = _v4_proxy_run(tmp_path)
    assert "--auth-url is still the platform's" in stderr


@pytest.mark.parametrize(
    ("extra", "env"),
    [
        (("--auth-url", "https://authenticate.copernica.com"), {}),
        ((), {"COPERNICA_AUTH_URL": "https://authenticate.copernica.com"}),
    ],
    ids=["option", "env"],
)
def test_explicit_platform_auth_url_with_a_proxy_api_url_is_accepted(
    tmp_path: Path, extra: tuple[str, ...], env: dict[str, str]
) -> None:
    """Naming the platform's auth URL (option or variable) passes the check: the run gets to its input."""
    stderr = _v4_proxy_run(tmp_path, *extra, **env)
    assert "still the platform's" not in stderr
    assert "missing.csv does not exist" in stderr


def test_run_simulate_ignores_a_platform_named_in_the_environment(tmp_path: Path) -> None:
    """run --simulate with COPERNICA_API_URL/_API_VERSION=4 set still runs against the simulator."""
    ids = write_ids(tmp_path / "ids.csv", [1, 2])
    result = run_cli(
        ["run", str(ids), "--out", str(tmp_path / "out"), "--simulate"],
        None,
        COPERNICA_API_URL="http://127.0.0.1:9",
        COPERNICA_API_VERSION="4",
        BATCH_EXPORT_INSTANT_RETRIES="1",
    )
    assert result.exit_code == 0, result.stderr
