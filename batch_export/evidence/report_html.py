"""The report as one self-contained HTML page: the archive at a glance, verification, footer.

No script, no external file, no web font: the page opens offline, and its
inline stylesheet has a print part (white background, no breaks inside
tables and the chart, table headings repeated on each page). The history
sections come from ``report_sections``.
"""

from __future__ import annotations

from typing import Any

from .report_data import STATUSES, ReportData
from .report_format import NOT_RECORDED, cell, e, human_bytes, number, row, table
from .report_sections import failures_section, inputs_section, rate_section, runs_section

__all__ = ["render_report"]

#: at most this many verification problems and unknown files are listed (the rest counted)
MAX_LISTED = 500

_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, "Segoe UI", Helvetica, Arial, sans-serif; color: #111;
  background: #fff; max-width: 1150px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { border-bottom: 2px solid #333; margin-top: 1.8em; }
.sub { color: #444; margin-top: 0; }
table { border-collapse: collapse; width: 100%; margin: .5em 0 1em; }
th, td { border: 1px solid #999; padding: .25em .5em; text-align: left; vertical-align: top;
  overflow-wrap: break-word; }
thead th { background: #eee; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: .92em;
  overflow-wrap: anywhere; }
table.glance { width: auto; min-width: 50%; }
.verdict { padding: .6em .9em; border: 2px solid #333; font-weight: bold; }
.verdict.ok { border-color: #1a6e2e; background: #eaf5ec; }
.verdict.bad { border-color: #a4161a; background: #fbeaea; }
.error, .warning { color: #a4161a; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 1em 0; } figcaption { margin-bottom: .4em; }
svg.chart { max-width: 100%; height: auto; border: 1px solid #999; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; }
dl.facts dt { font-weight: bold; } dl.facts dd { margin: 0; }
footer { margin-top: 3em; border-top: 1px solid #999; padding-top: .5em; color: #333; font-size: .9em; }
@media print {
  @page { margin: 14mm; }
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; background: #fff; }
  nav { display: none; }
  .verdict.ok, .verdict.bad, thead th { background: #fff !important; }
  table, figure, svg, tr, dl { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
}
"""

_NAV = (
    ("glance", "At a glance"), ("runs", "Runs"), ("rate", "Rate"), ("failures", "Failures"),
    ("verification", "Verification"), ("inputs", "Inputs"),
)  # fmt: skip

_MEANING = {
    "done": "exported, saved and recorded with its sha256",
    "failed": "the platform or the download failed for good (see Failures)",
    "invalid": "the input row holds no usable ID",
    "pending": "not finished when the last run stopped",
}


def render_report(data: ReportData) -> str:
    """The whole page for ``data``."""
    nav = "".join(f'<li><a href="#{key}">{e(label)}</a></li>' for key, label in _NAV)
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta name="generator" content="batch-export {e(data.version)}">',
            f"<title>{e(data.title)}</title><style>{_CSS}</style></head><body>",
            f"<header><h1>{e(data.title)}</h1>",
            f'<p class="sub">Archive <code>{e(data.directory)}</code> · '
            f"{e(', '.join(sorted(data.manifest.kinds)) or 'no')} exports · "
            f"report generated {e(data.generated_at)}. This report names people: "
            "keep it as confidential as the archive.</p></header>",
            f"<nav><ul>{nav}</ul></nav>",
            _glance(data),
            runs_section(data),
            rate_section(data),
            failures_section(data),
            _verification(data),
            inputs_section(data),
            f'<footer id="footer">Generated at <time id="generated-at">{e(data.generated_at)}'
            f'</time> by batch-export <span id="tool-version">{e(data.version)}</span> from '
            f'<code id="directory">{e(data.directory)}</code>.</footer>',
            "</body></html>\n",
        ]
    )


def _verdict(data: ReportData, ident: str) -> str:
    """One sentence: does the archive verify? (``ident``: the element's id, unique per page)"""
    found = data.verification
    if found is None:
        return (
            f'<p class="verdict bad" id="{e(ident)}" data-ok="error">Verification could not '
            f"run: {e(data.verification_error)}</p>"
        )
    problems = found.get("problems") or []
    if found.get("ok"):
        return (
            f'<p class="verdict ok" id="{e(ident)}" data-ok="true">Verified: all '
            f"{number(found.get('verified'))} exports match the manifest byte for byte "
            f"({human_bytes(int(found.get('bytes') or 0))}).</p>"
        )
    return (
        f'<p class="verdict bad" id="{e(ident)}" data-ok="false">NOT verified: '
        f"{len(problems):,} problem(s) found; {number(found.get('verified'))} of "
        f"{number(found.get('checked'))} exports match the manifest. See Verification.</p>"
    )


def _glance(data: ReportData) -> str:
    facts = data.manifest
    rows = [
        row(
            [
                cell(e(status), tag="th"),
                cell(number(facts.counts[status]), css="num", data=str(facts.counts[status])),
                cell(e(_MEANING[status])),
            ],
            status=status,
        )
        for status in STATUSES
    ]
    rows.append(
        row(
            [
                cell("total", tag="th"),
                cell(number(facts.total), css="num", data=str(facts.total)),
                cell("targets in the manifest"),
            ],
            status="total",
        )
    )
    rows.append(
        row(
            [
                cell("size", tag="th"),
                cell(e(human_bytes(facts.bytes)), css="num", data=str(facts.bytes)),
                cell(f"{facts.bytes:,} bytes in the done exports"),
            ],
            status="bytes",
        )
    )
    extra = ""
    if facts.unreadable:
        extra += f'<p class="warning">{facts.unreadable:,} manifest line(s) could not be read.</p>'
    archive = data.runs[-1].get("archive") if data.runs else None
    if isinstance(archive, dict) and archive.get("not_in_input"):
        extra += (
            f"<p>The archive also holds {number(archive.get('not_in_input'))} done export(s) "
            "of targets that are not in the last run's input.</p>"
        )
    return (
        '<section id="glance"><h2>The archive at a glance</h2>'
        f"{table(('Status', 'Targets', 'Meaning'), rows, css='glance')}{extra}{_verdict(data, 'glance-verdict')}</section>"
    )


def _listed(items: list[Any]) -> tuple[list[Any], str]:
    """The first ``MAX_LISTED`` items and a note on how many more there are."""
    more = len(items) - MAX_LISTED
    return items[:MAX_LISTED], (f"<p>… and {more:,} more.</p>" if more > 0 else "")


def _seal_facts(data: ReportData, found: dict[str, Any]) -> list[tuple[str, str]]:
    seals = found.get("seals")
    journal = found.get("journal")
    if not isinstance(seals, dict) or not seals:  # an older verify, or no proof made
        unsigned = "not checked (this version of verify checks no seals or signatures)"
        facts = [("Seals", NOT_RECORDED), ("Signature", f'<span id="signature">{unsigned}</span>')]
    else:
        signature = str(seals.get("signature") or NOT_RECORDED)
        if signature == "not checked":
            signature += " (no --key given)" if not data.keys_given else ""
        facts = [
            (
                "Seals",
                f"{e(seals.get('count'))} seal(s), latest <code>{e(seals.get('latest') or '–')}</code>, chain {e(seals.get('chain'))}",
            ),
            (
                "Signature",
                f'<span id="signature">{e(signature)}</span>'
                + (" (signed)" if seals.get("signed") else ""),
            ),
        ]
    chain = (
        f"{e(journal.get('lines'))} lines, chain {e(journal.get('chain'))}"
        if isinstance(journal, dict) and journal
        else NOT_RECORDED
    )
    facts.append(("Journal", chain))
    return facts


def _verification(data: ReportData) -> str:
    parts = ['<section id="verification"><h2>Verification</h2>', _verdict(data, "verify-result")]
    found = data.verification
    sha = found.get("manifest_sha256") if found else None
    facts: list[tuple[str, str]] = []
    if found is not None:
        facts += [
            ("Exports checked", number(found.get("checked"))),
            ("Exports verified", number(found.get("verified"))),
            ("Entries not done", number(found.get("not_done"))),
            *_seal_facts(data, found),
        ]
    facts.append(
        (
            "Manifest sha256",
            f'<code id="manifest-sha256">{e(sha or data.manifest.sha256)}</code>'
            + ("" if sha else " (computed by this report)"),
        )
    )
    parts.append(
        '<dl class="facts">' + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    )
    if found is not None:
        parts.append(_problems(found))
        parts.append(_unknown(found))
    parts.append("</section>")
    return "".join(parts)


def _problems(found: dict[str, Any]) -> str:
    problems = [p for p in found.get("problems") or [] if isinstance(p, dict)]
    if not problems:
        return '<p id="no-problems">No problem found.</p>'
    shown, more = _listed(problems)
    rows = [
        row(
            [
                cell(e(p.get("check") or "export")),
                cell(number(p.get("line")), css="num"),
                cell(e(p.get("kind"))),
                cell(f"<code>{e(p.get('id'))}</code>"),
                cell(f"<code>{e(p.get('file') or '–')}</code>"),
                cell(e(p.get("problem")), css="problem"),
            ],
            css="problem",
        )
        for p in shown
    ]
    return (
        "<h3>Problems</h3>"
        + table(("Check", "Manifest line", "Kind", "ID", "File", "Problem"), rows, css="problems")
        + more
    )


def _unknown(found: dict[str, Any]) -> str:
    unknown = found.get("unknown_files")
    if not isinstance(unknown, list):
        return ""
    if not unknown:
        return '<p id="no-unknown-files">No unknown file in the directory.</p>'
    shown, more = _listed(unknown)
    items = "".join(f"<li><code>{e(name)}</code></li>" for name in shown)
    return f'<h3>Unknown files</h3><p>Files verify does not know of:</p><ul id="unknown-files">{items}</ul>{more}'
