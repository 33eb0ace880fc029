"""``batch-export report``: the HTML page for auditors, built from real archives and parsed back.

The archive is made by the product against the simulator (two runs, two
inputs, failures and an invalid row); the page is parsed with the stdlib's
``html.parser`` and rendered by a real headless Chromium (screen and print).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from batch_export.evidence.causes import OTHER_CAUSES, FailureGroups, failure_cause
from batch_export.evidence.report_chart import MAX_BARS, bars_per_minute, chart_svg
from batch_export.simulator import SimulatorConfig

from .conftest import SimThread, api_args, read_manifest, run_cli, write_ids

MISSING = frozenset({"5", "6", "7", "15"})


# --- a small DOM, from html.parser ------------------------------------------------------------

_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "wbr",
}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Descendants with ``tag`` whose attributes hold ``attrs`` (``css`` matches a class)."""
        wanted = {("class" if k == "css" else k.replace("_", "-")): v for k, v in attrs.items()}
        return [
            node
            for node in self.walk()
            if (tag is None or node.tag == tag)
            and all(
                (v in node.attrs.get(k, "").split()) if k == "class" else node.attrs.get(k) == v
                for k, v in wanted.items()
            )
        ]

    def by_id(self, ident: str) -> Node:
        found = self.find(id=ident)
        assert len(found) == 1, f"{len(found)} elements with id {ident!r}"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: str) -> Node:
    """The page as a tree; fails on a mismatched closing tag."""
    builder = _Builder()
    builder.feed(page)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


# --- archives -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    out: Path
    inputs: tuple[Path, Path]
    token: str


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    """A real archive of two runs with different inputs: 404s, a 400 and an invalid row each."""
    base = tmp_path_factory.mktemp("archive")
    sim = SimThread(
        SimulatorConfig(
            prepare_delay="0.05:0.3",
            export_size=2_000,
            missing_ids=MISSING,
            behaviours={"8": "bad-request"},
        )
    )
    try:
        out = base / "out"
        first = write_ids(base / "first.csv", [*range(1, 13), "abc"])
        second = write_ids(base / "second.csv", [*range(5, 21), "x1"])
        for source in (first, second):
            result = run_cli(["run", str(source), "--out", str(out), *api_args(sim)], sim.token)
            assert result.exit_code == 1, result.stderr
        yield Archive(out, (first, second), sim.token)
    finally:
        sim.stop()


def render(out: Path, report: Path, *args: str) -> tuple[int, str, Node]:
    """Run ``batch-export report`` and parse what it wrote."""
    result = run_cli(["report", str(out), "-o", str(report), *args], None)
    assert result.exit_code in (0, 1), result.stderr
    page = report.read_text(encoding="utf-8")
    return result.exit_code, page, parse(page)


@pytest.fixture(scope="module")
def rendered(archive: Archive, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Node]:
    """The untouched archive's report: its path, text and tree."""
    report = tmp_path_factory.mktemp("report") / "report.html"
    code, page, tree = render(archive.out, report)
    assert code == 0
    return report, page, tree


def _value(node: Node) -> int:
    return int(node.attrs["data-value"])


# --- the page's contents ------------------------------------------------------------------------


def test_glance_counts_equal_the_manifest(
    archive: Archive, rendered: tuple[Path, str, Node]
) -> None:
    """The at-a-glance counts and bytes are exactly the manifest's."""
    entries = read_manifest(archive.out)
    glance = rendered[2].by_id("glance")
    for status in ("done", "failed", "invalid", "pending"):
        (line,) = glance.find("tr", data_status=status)
        (count,) = line.find("td", css="num")
        assert _value(count) == sum(e["status"] == status for e in entries), status
    (size,) = glance.find("tr", data_status="bytes")[0].find("td", css="num")
    assert _value(size) == sum(e["bytes"] for e in entries if e["status"] == "done")
    assert _value(glance.find("tr", data_status="total")[0].find("td", css="num")[0]) == len(
        entries
    )


def test_failures_are_grouped_by_cause_with_examples(
    archive: Archive, rendered: tuple[Path, str, Node]
) -> None:
    """Each failure group's cause, count and example IDs equal those computed from the manifest."""
    expected: dict[str, list[str]] = {}
    for entry in read_manifest(archive.out):
        if entry["status"] == "failed":
            # Independently of causes.py: the simulator names the profile as "Profile ID ".
            cause = entry["error"].replace(f"Profile {entry['id']} ", "Profile <id> ")
            expected.setdefault(cause, []).append(entry["id"])
    found = {}
    for line in rendered[2].by_id("failed-causes").find("tr", css="cause-group"):
        cause = line.find("td", css="cause")[0].text()
        examples = [code.text() for code in line.find("code")]
        found[cause] = (_value(line.find("td", css="count")[0]), examples)
    assert found == {cause: (len(ids), ids[:5]) for cause, ids in expected.items()}
    assert "HTTP 404 from POST datarequest: Profile <id> does not exist" in found
    assert sorted(
        found["HTTP 404 from POST datarequest: Profile <id> does not exist"][1]
    ) == sorted(MISSING)
    (invalid,) = rendered[2].by_id("invalid-causes").find("tr", css="cause-group")
    assert [c.text() for c in invalid.find("code")] == ["x1"]


def test_runs_and_inputs_are_listed(archive: Archive, rendered: tuple[Path, str, Node]) -> None:
    """Both runs are rows of the timeline with their counts, and each run's input is listed."""
    runs = [json.loads(line) for line in (archive.out / "runs.jsonl").read_text().splitlines()]
    tree = rendered[2]
    rows = tree.by_id("runs").find("tr", css="run")
    assert [r.attrs["data-run"] for r in rows] == ["1", "2"]
    for line, run in zip(rows, runs, strict=True):
        cells = line.find("td", css="num")
        done = [c for c in cells if c.attrs.get("data-value") == str(run["counts"]["done"])]
        assert done, line.text()
        assert run["started_at"] in line.text()
    inputs = tree.by_id("inputs").find("tr", css="input")
    assert len(inputs) == 2
    for line, run, source in zip(inputs, runs, archive.inputs, strict=True):
        if isinstance(run.get("input"), dict):  # written by versions that record the input
            assert line.find("td", css="path")[0].text() == run["input"]["path"]
            digest = hashlib.sha256(source.read_bytes()).hexdigest()
            assert line.find("td", css="sha256")[0].text() == digest
        else:
            assert "not recorded" in line.text()
    assert len(tree.by_id("chart").find("rect", css="bar")) >= 1
    assert "exports per minute" in tree.by_id("chart").text()


def test_verification_is_ok_for_an_untouched_archive(
    archive: Archive, rendered: tuple[Path, str, Node]
) -> None:
    """The report states that verification passed, and the manifest's sha256."""
    tree = rendered[2]
    assert tree.by_id("verify-result").attrs["data-ok"] == "true"
    digest = hashlib.sha256((archive.out / "manifest.jsonl").read_bytes()).hexdigest()
    assert tree.by_id("manifest-sha256").text() == digest
    assert tree.by_id("signature").text()
    assert tree.find(id="no-problems")


def test_a_changed_export_is_reported(archive: Archive, tmp_path: Path) -> None:
    """After one export file changes, the report says so (and exits 1), naming that target."""
    out = tmp_path / "out"
    shutil.copytree(archive.out, out)
    victim = next(e for e in read_manifest(out) if e["status"] == "done")
    path = out / victim["file"]
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01
    path.write_bytes(bytes(data))
    code, _, tree = render(out, tmp_path / "report.html")
    assert code == 1
    assert tree.by_id("verify-result").attrs["data-ok"] == "false"
    problems = tree.by_id("verification").find("tr", css="problem")
    assert len(problems) == 1
    assert victim["id"] in problems[0].text() and "sha256" in problems[0].text()


def test_the_page_is_self_contained_private_and_secret_free(
    archive: Archive, rendered: tuple[Path, str, Node]
) -> None:
    """No script, no outside address or resource, no token; the file is 0600."""
    report, page, tree = rendered
    assert "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page and "url(" not in page
    for node in tree.walk():
        assert not any(name.startswith("on") for name in node.attrs), node.tag
        assert "src" not in node.attrs, node.tag
        assert node.attrs.get("href", "#").startswith("#"), node.attrs
    assert archive.token not in page
    assert os.stat(report).st_mode & 0o777 == 0o600
    assert tree.by_id("generated-at").text().endswith("Z")
    assert tree.by_id("directory").text() == str(archive.out.resolve())


def test_ids_and_messages_are_escaped(archive: Archive, tmp_path: Path) -> None:
    """An ID and an error message holding markup are shown as text, never as markup."""
    out = tmp_path / "out"
    shutil.copytree(archive.out, out)
    hostile = {
        "kind": "profile", "id": "<script>alert(1)</script>", "status": "failed",
        "request_id": None, "file": None, "bytes": 0, "sha256": None, "compressed": None,
        "attempts": 1, "ambiguous_submits": 0, "reissued": 0,
        "error": 'HTTP 400 from POST datarequest: <img src=x onerror="alert(2)">',
    }  # fmt: skip
    with (out / "manifest.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(hostile) + "\n")
    _, page, tree = render(out, tmp_path / "report.html")
    assert "<script>" not in page and "<img" not in page
    causes = [c.text() for c in tree.by_id("failed-causes").find("td", css="cause")]
    assert 'HTTP 400 from POST datarequest: <img src=x onerror="alert(<n>)">' in causes
    assert "<script>alert(1)</script>" in tree.by_id("failed-causes").text()


def test_an_older_archive_says_not_recorded(archive: Archive, tmp_path: Path) -> None:
    """Runs without the newer keys (input, rate_found, run) give "not recorded", not an error."""
    out = tmp_path / "out"
    shutil.copytree(archive.out, out)
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    old = [
        {k: v for k, v in r.items() if k not in {"input", "rate_found", "run", "seal", "archive"}}
        for r in runs
    ]
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    _, _, tree = render(out, tmp_path / "report.html")
    assert tree.by_id("rate-found").text() == "not recorded"
    assert all("not recorded" in r.text() for r in tree.by_id("inputs").find("tr", css="input"))
    assert [r.attrs["data-run"] for r in tree.by_id("runs").find("tr", css="run")] == ["1", "2"]


def test_report_to_stdout(archive: Archive) -> None:
    """``-o -`` writes the page to stdout."""
    result = run_cli(["report", str(archive.out), "-o", "-", "--title", "Audit <2026>"], None)
    assert result.exit_code == 0, result.stderr
    assert parse(result.stdout).find("title")[0].text() == "Audit <2026>"
    assert "Audit &lt;2026&gt;" in result.stdout


def test_not_an_archive_exits_2(tmp_path: Path) -> None:
    """A directory without a manifest: exit 2, a message naming it, no report, no traceback."""
    result = run_cli(["report", str(tmp_path), "-o", str(tmp_path / "r.html")], None)
    assert result.exit_code == 2
    assert "manifest" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_output_into_a_missing_directory_exits_2(archive: Archive, tmp_path: Path) -> None:
    """``-o`` into a directory that does not exist: exit 2 with a message, no traceback."""
    result = run_cli(["report", str(archive.out), "-o", str(tmp_path / "no" / "r.html")], None)
    assert result.exit_code == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


# --- causes and the chart, as units -------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "target", "cause"),
    [
        ("HTTP 404 from POST datarequest: Profile 5 does not exist", "5",
         "HTTP 404 from POST datarequest: Profile <id> does not exist"),
        ("gave up after 8 attempts: HTTP 500 from POST datarequest: an HTML page", "10",
         "gave up after <n> attempts: HTTP 500 from POST datarequest: an HTML page"),
        ("the platform forgot or expired the request 6 times; lower --max-pending", "3",
         "the platform forgot or expired the request <n> times; lower --max-pending"),
        ("no export within --timeout 3600s", "2", "no export within --timeout <n>s"),
        ("the export's info.id does not match profile 12 (not saved)", "12",
         "the export's info.id does not match profile <id> (not saved)"),
        ("HTTP 404 from GET datarequest: request dr_ABCDEFGH234567 of A@X.nl", "a@x.nl",
         "HTTP 404 from GET datarequest: request <id> of <id>"),
        ("Profile 123 is not 12", "12", "Profile <n> is not <id>"),
        (None, "1", "unknown (no error recorded)"),
    ],
)  # fmt: skip
def test_failure_cause(message: str | None, target: str, cause: str) -> None:
    """A cause drops the target's ID, other IDs and numbers, and keeps the HTTP status and endpoint."""
    assert failure_cause(message, target) == cause


def test_failure_groups_stay_bounded() -> None:
    """Groups keep a count, at most N examples each, and at most M causes (the rest "other")."""
    groups = FailureGroups(max_examples=2, max_causes=2)
    for target in range(10):
        groups.add(f"HTTP 404 from POST datarequest: Profile {target} does not exist", str(target))
    groups.add("first odd cause", "a")
    groups.add("second odd cause", "b")
    groups.add("third odd cause", "c")
    found = [(g.cause, g.count, g.examples) for g in groups.groups()]
    assert found[0] == (
        "HTTP 404 from POST datarequest: Profile <id> does not exist",
        10,
        ["0", "1"],
    )
    assert (OTHER_CAUSES, 2, ["b", "c"]) in found
    assert len(groups) == 3 and groups.total == 13 and groups.overflowed == 2


def test_chart_bars_count_exports_per_minute() -> None:
    """Bars count done times per minute; a span of days widens them to at most MAX_BARS."""
    start = 1_800_000_000.0 - 1_800_000_000.0 % 60
    bars = bars_per_minute([start + 1, start + 2, start + 61, start + 179])
    assert bars is not None and bars.minutes == 1 and bars.counts[:3] == [2, 1, 1]
    svg = chart_svg(bars, [(start, "run 1")])
    assert svg.count('class="bar"') == 3 and "run 1" in svg
    assert "exports per minute" in svg and "time (UTC)" in svg
    wide = bars_per_minute([start + i * 600 for i in range(3 * 24 * 6)])
    assert wide is not None and len(wide.counts) <= MAX_BARS
    assert sum(wide.counts) == 3 * 24 * 6 and wide.rate(0) == wide.counts[0] / wide.minutes
    assert bars_per_minute([]) is None


# --- a real browser -----------------------------------------------------------------------------


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    """Run headless Chromium on a page (killed with its whole process group at teardown)."""
    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI must not skip the browser test")
        pytest.skip("chromium is not installed")
    started: list[subprocess.Popen[bytes]] = []

    def run(page: Path, *flags: str) -> None:
        profile = tmp_path / f"profile-{len(started)}"
        proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--disable-extensions", "--disable-background-networking",
             f"--user-data-dir={profile}", *flags, page.resolve().as_uri()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        started.append(proc)
        assert proc.wait(timeout=120) == 0

    yield run
    for proc in started:
        # Its helper processes (zygote, renderers) may outlive it: end its whole group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_chromium_renders_the_report_on_screen_and_on_paper(
    chromium: Any, rendered: tuple[Path, str, Node], tmp_path: Path
) -> None:
    """Headless Chromium draws the report (far more ink than a blank page) and prints it to PDF."""
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    size = "--window-size=1280,2000"
    chromium(blank, f"--screenshot={tmp_path / 'blank.png'}", size)
    chromium(rendered[0], f"--screenshot={tmp_path / 'report.png'}", size)
    assert _png_size(tmp_path / "blank.png") == _png_size(tmp_path / "report.png") == (1280, 2000)
    blank_bytes = (tmp_path / "blank.png").stat().st_size
    report_bytes = (tmp_path / "report.png").stat().st_size
    assert report_bytes > 10 * blank_bytes, (report_bytes, blank_bytes)
    pdf = tmp_path / "report.pdf"
    chromium(rendered[0], f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 20_000
    assert len(re.findall(rb"/Type\s*/Page\b", data)) >= 1
