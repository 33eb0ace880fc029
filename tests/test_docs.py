"""The documentation stays true: its commands, options, exit codes and module table."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

import batch_export.cli as cli_module
from batch_export.cli import cli
from batch_export.errors import InternalError
from batch_export.run import options as run_options

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
QUICKSTART = [
    "pip install . && batch-export run sample_inputs/profiles.csv --out demo-export --simulate",
    "pip install '.[test]' && python -m pytest -q",
]
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "2>", "2>&1", "&"}


def _section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section of a markdown text."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)


def _command_lines(text: str) -> list[str]:
    """Every line of a fenced code block, with backslash continuations joined."""
    lines: list[str] = []
    for block in _code_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            lines.append(line.strip())
    return lines


def _invocations(line: str) -> list[tuple[str, list[str]]]:
    """(subcommand, [--long-options]) for each ``batch-export SUB ...`` in a shell line."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return []  # not shell (an unbalanced quote in prose or a unit file): skip
    found: list[tuple[str, list[str]]] = []
    for index, token in enumerate(tokens):
        if token != "batch-export" and not token.endswith("/batch-export"):
            continue
        rest = tokens[index + 1 :]
        if not rest or rest[0].startswith("-") or not re.fullmatch(r"[a-z]+", rest[0]):
            continue  # `batch-export --help`, or a placeholder
        options: list[str] = []
        for word in rest[1:]:
            if word in SHELL_OPERATORS or word == "batch-export":
                break
            if word.startswith("--") and len(word) > 2:
                options.append(word.split("=", 1)[0])
        found.append((rest[0], options))
    return found


def test_readme_quickstart_is_exactly_the_two_commands() -> None:
    """The README's quickstart is exactly the two documented commands, and CI runs the second verbatim."""
    blocks = _code_blocks(_section(README.read_text(encoding="utf-8"), "Quickstart"))
    assert len(blocks) == 1
    commands = [line for line in blocks[0].splitlines() if line.strip()]
    assert commands == QUICKSTART
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert QUICKSTART[1] in ci_lines


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda path: path.name)
def test_documented_commands_and_options_exist(doc: Path) -> None:
    """Every `batch-export SUB --option` in the doc's code blocks is a real subcommand and option."""
    problems = []
    for line in _command_lines(doc.read_text(encoding="utf-8")):
        for name, options in _invocations(line):
            command = cli.commands.get(name)
            if command is None:
                problems.append(f"unknown subcommand {name!r} in: {line}")
                continue
            known = {
                opt for param in command.params for opt in (*param.opts, *param.secondary_opts)
            }
            known |= {"--help"}
            problems.extend(
                f"{name} has no option {option} (in: {line})"
                for option in options
                if option not in known
            )
    assert problems == []


def test_readme_demo_command_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's demo command exits 0 and leaves 300 done lines in the manifest."""
    demo = QUICKSTART[0].split(" && ", 1)[1]
    args = shlex.split(demo)[1:]
    out = tmp_path / "demo-export"
    args[args.index("--out") + 1] = str(out)
    monkeypatch.chdir(ROOT)  # the README's command is run from the repository root
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with (out / "manifest.jsonl").open(encoding="utf-8") as handle:
        statuses = [json.loads(line)["status"] for line in handle]
    assert statuses.count("done") == 300
    assert len(statuses) == 300


def _docstring_exit_codes() -> set[int]:
    doc = cli_module.__doc__ or ""
    block = doc.split("Exit codes", 1)[1]
    return {int(code) for code in re.findall(r"(?:^|\s{2,})(\d{1,3})\s+[a-z]", block, re.M)}


def test_readme_exit_codes_match_the_cli_docstring() -> None:
    """The README's exit-code table lists exactly the codes of cli.py's docstring (and pipeline's constants)."""
    section = _section(README.read_text(encoding="utf-8"), "Exit codes")
    documented = {int(code) for code in re.findall(r"^\|\s*`?(\d+)`?\s*\|", section, re.M)}
    from_code = _docstring_exit_codes()
    assert from_code == {0, 1, 2, 70, 130, 143}
    assert documented == from_code
    constants = {
        run_options.EXIT_OK,
        run_options.EXIT_INCOMPLETE,
        run_options.EXIT_CONFIG,
        InternalError.exit_code,
        run_options.EXIT_SIGINT,
        run_options.EXIT_SIGTERM,
    }
    assert constants == from_code


def test_architecture_module_table_matches_the_package() -> None:
    """docs/ARCHITECTURE.md's module table names every batch_export module and only real ones."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    named = {match for row in rows for match in re.findall(r"^\| `([\w/]+\.py)`", row)}
    assert named, "no module table found"
    package = ROOT / "batch_export"
    missing_files = sorted(name for name in named if not (package / name).is_file())
    assert missing_files == []
    modules = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if path.name not in {"__main__.py", "_version.py"}
        and path.parts[len(package.parts)] != "simulator"
        and not (path.name == "__init__.py" and path.parent != package / "cli")
    }
    assert sorted(modules - named) == []
