"""The report's sections about history: the runs and their chart, the rate, failures, inputs.

Each function takes ``ReportData`` and returns one ``<section>`` of escaped
markup. A key an older version did not write shows as "not recorded".
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from .causes import OTHER_CAUSES, FailureGroups
from .report_chart import bars_per_minute, chart_svg
from .report_data import STATUSES, ReportData, parse_time
from .report_format import (
    NOT_RECORDED,
    cell,
    duration,
    e,
    human_bytes,
    number,
    row,
    short_sha,
    table,
    when,
)

__all__ = ["failures_section", "inputs_section", "rate_section", "runs_section"]

_RUN_HEADINGS = (
    "Run", "Started (UTC)", "Finished (UTC)", "Duration", "Input",
    *STATUSES, "Rate found", "Ended",
)  # fmt: skip


def _input_summary(run: dict[str, Any]) -> str:
    source = run.get("input")
    if not isinstance(source, dict):
        return NOT_RECORDED
    path = source.get("path")
    name = PurePath(path).name if isinstance(path, str) and path else NOT_RECORDED
    return (
        f"<code>{e(name)}</code><br>sha256 <code>{short_sha(source.get('sha256'))}</code><br>"
        f"{number(source.get('rows'))} rows, {number(source.get('targets'))} targets"
    )


def _ending(run: dict[str, Any]) -> str:
    code = run.get("exit_code")
    parts = [f"exit {e(code)}" if code is not None else f"exit {NOT_RECORDED}"]
    if run.get("interrupted"):
        parts.append(f"interrupted ({e(run['interrupted'])})")
    if run.get("error"):
        parts.append(f'<span class="error">{e(run["error"])}</span>')
    return "<br>".join(parts)


def _rate(value: object) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g} requests/s"
    return NOT_RECORDED


def _run_row(run: dict[str, Any]) -> str:
    counts = run.get("counts") if isinstance(run.get("counts"), dict) else {}
    assert isinstance(counts, dict)
    return row(
        [
            cell(e(run["run"]), tag="th", data=str(run["run"])),
            cell(e(run.get("started_at") or NOT_RECORDED)),
            cell(e(run.get("finished_at") or NOT_RECORDED)),
            cell(duration(run.get("elapsed_seconds")), css="num"),
            cell(_input_summary(run)),
            *(
                cell(number(counts.get(status)), css="num", data=str(counts.get(status, "")))
                for status in STATUSES
            ),
            cell(_rate(run.get("rate_found")), css="num"),
            cell(_ending(run)),
        ],
        css="run",
        run=str(run["run"]),
    )


def _unfinished_row(started: float) -> str:
    text = "did not finish: no summary was written (the run was killed or crashed)"
    return row(
        [
            cell("–", tag="th"),
            cell(e(when(started))),
            cell(f'<span class="error">{e(text)}</span>'),
            *(cell("") for _ in range(len(_RUN_HEADINGS) - 3)),
        ],
        css="run unfinished",
    )


def runs_section(data: ReportData) -> str:
    """Every run, one row each in time order, and the exports-per-minute chart."""
    timeline: list[tuple[float, str]] = []
    shown: set[int] = set()
    markers: list[tuple[float, str]] = []
    for journal_run in data.journal_runs:
        summary = journal_run.summary
        if summary is None:
            timeline.append((journal_run.started, _unfinished_row(journal_run.started)))
            markers.append((journal_run.started, "unfinished run"))
        else:
            shown.add(id(summary))
            timeline.append((journal_run.started, _run_row(summary)))
            markers.append((journal_run.started, f"run {summary['run']}"))
    for run in data.runs:  # summaries the journal has no line for (an older journal, or none)
        if id(run) not in shown:
            timeline.append((parse_time(run.get("started_at")) or 0.0, _run_row(run)))
    timeline.sort(key=lambda item: item[0])
    body = (
        table(_RUN_HEADINGS, (markup for _, markup in timeline), css="runs")
        if timeline
        else "<p>No run is recorded (there is no <code>runs.jsonl</code>).</p>"
    )
    if data.unreadable_runs:
        body += f'<p class="warning">{data.unreadable_runs} line(s) of <code>runs.jsonl</code> could not be read.</p>'
    return (
        '<section id="runs"><h2>Runs</h2>'
        f"<p>{len(data.runs)} finished run(s); times are UTC.</p>{body}{_chart(data, markers)}</section>"
    )


def _chart(data: ReportData, markers: list[tuple[float, str]]) -> str:
    bars = bars_per_minute(data.done_times)
    if bars is None:
        why = "the journal records no saved export" if data.journal_found else "there is no journal"
        return f'<p id="chart-none">No chart of exports per minute: {e(why)}.</p>'
    peak, peak_at = bars.peak
    width = "minute" if bars.minutes == 1 else f"{bars.minutes} minutes"
    return (
        '<figure id="chart"><figcaption>Exports saved per minute (one bar per '
        f"{e(width)}; dashed lines mark the start of each run), from the journal's "
        f"{len(data.done_times):,} <code>done</code> lines. Peak: {peak:g} per minute "
        f"at {e(when(peak_at))}.</figcaption>{chart_svg(bars, markers)}</figure>"
    )


def rate_section(data: ReportData) -> str:
    """The account's rate limit as the tool found it (``rate_found`` of the latest run with one)."""
    found = [run for run in data.runs if isinstance(run.get("rate_found"), (int, float))]
    if found:
        run = found[-1]
        text = (
            f'<p>The tool found the account\'s limit at <strong id="rate-found">'
            f"{_rate(run['rate_found'])}</strong> (run {e(run['run'])}, finished "
            f"{e(run.get('finished_at') or NOT_RECORDED)}).</p>"
        )
    else:
        settings = data.runs[-1].get("settings") if data.runs else None
        fixed = settings.get("rate") if isinstance(settings, dict) else None
        reason = f" (the last run used a fixed --rate of {e(fixed)} requests/s)" if fixed else ""
        text = f'<p>Rate found: <strong id="rate-found">{NOT_RECORDED}</strong>{reason}.</p>'
    return f'<section id="rate"><h2>The rate found for the account</h2>{text}</section>'


def _groups_table(groups: FailureGroups, what: str) -> str:
    rows = [
        row(
            [
                cell(e(group.cause), css="cause"),
                cell(number(group.count), css="num count", data=str(group.count)),
                cell(
                    ", ".join(f"<code>{e(example)}</code>" for example in group.examples),
                    css="examples",
                ),
            ],
            css="cause-group",
        )
        for group in groups.groups()
    ]
    note = (
        f"<p>Only the first {groups.max_causes} distinct causes are told apart; "
        f"{groups.overflowed:,} more {e(what)} are counted under “{e(OTHER_CAUSES)}”.</p>"
        if groups.overflowed
        else ""
    )
    return table(("Cause", "Targets", "Example IDs"), rows, css="causes") + note


def failures_section(data: ReportData) -> str:
    """Failed targets grouped by cause, and invalid input rows grouped by reason."""
    facts = data.manifest
    parts = ['<section id="failures"><h2>Failures by cause</h2>']
    if facts.failures.total:
        parts.append(
            f"<p>{facts.failures.total:,} target(s) failed. A cause is the error message "
            "with the target's ID and other numbers taken out (<code>&lt;id&gt;</code>, "
            "<code>&lt;n&gt;</code>); the HTTP status and endpoint are kept.</p>"
        )
        parts.append(f'<div id="failed-causes">{_groups_table(facts.failures, "failures")}</div>')
    else:
        parts.append('<p id="no-failures">No target failed.</p>')
    if facts.invalid.total:
        parts.append(
            f"<h3>Invalid input rows</h3><p>{facts.invalid.total:,} row(s) of the input "
            "hold no usable ID.</p>"
        )
        parts.append(f'<div id="invalid-causes">{_groups_table(facts.invalid, "rows")}</div>')
    parts.append("</section>")
    return "".join(parts)


def inputs_section(data: ReportData) -> str:
    """Each run's input file: path, size, sha256, rows and distinct targets."""
    rows = []
    for run in data.runs:
        source = run.get("input")
        if not isinstance(source, dict):
            rows.append(
                row(
                    [
                        cell(e(run["run"]), tag="th"),
                        cell(NOT_RECORDED),
                        *(cell("") for _ in range(4)),
                    ],
                    css="input",
                )
            )
            continue
        size = source.get("size")
        rows.append(
            row(
                [
                    cell(e(run["run"]), tag="th"),
                    cell(f"<code>{e(source.get('path') or NOT_RECORDED)}</code>", css="path"),
                    cell(
                        human_bytes(size) if type(size) is int else NOT_RECORDED,
                        css="num",
                        data=str(size),
                    ),
                    cell(f"<code>{e(source.get('sha256') or NOT_RECORDED)}</code>", css="sha256"),
                    cell(number(source.get("rows")), css="num", data=str(source.get("rows"))),
                    cell(number(source.get("targets")), css="num", data=str(source.get("targets"))),
                ],
                css="input",
                run=str(run["run"]),
            )
        )
    body = (
        table(
            ("Run", "Input file", "Size", "sha256", "Rows", "Distinct targets"), rows, css="inputs"
        )
        if rows
        else f"<p>{NOT_RECORDED}: no run is recorded.</p>"
    )
    return f'<section id="inputs"><h2>Inputs</h2>{body}</section>'
