"""Export paths: always inside the output dir, short, safe characters, never colliding."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_export.input.ids import Target, TargetKind, validate_id
from batch_export.storage.naming import export_relname


def export_relpath(target: Target, *, suffix: str = ".json") -> PurePosixPath:
    """``export_relname`` as a path object, for the checks below."""
    return PurePosixPath(export_relname(target, suffix=suffix))


SAFE = re.compile(r"[A-Za-z0-9._+@/-]+")
ROOT = Path("/srv/out-dir")

# Local parts built from anything an attacker or a messy export might offer:
# traversal pieces, separators, unicode, and very long runs.
_local_chars = st.one_of(
    st.sampled_from(["../", "/", "..", ".", "\\", "~", "+", "-", "_", "A", "a", "É", "é", "ß"]),
    st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp", "Cf", "Co", "Cn")),
)
_locals = st.lists(_local_chars, min_size=1, max_size=80).map("".join)
_domains = st.sampled_from(["example.nl", "EXAMPLE.com", "bücher.de", "x-y.co.uk"])


def _email(local: str, domain: str) -> Target | None:
    try:
        return Target(TargetKind.EMAIL, validate_id(TargetKind.EMAIL, f"{local}@{domain}"))
    except ValueError:
        return None


emails = (
    st.builds(_email, _locals, _domains)
    .filter(lambda t: t is not None)
    .map(lambda t: t if t is not None else Target(TargetKind.EMAIL, "x@x.nl"))
)
numbers = st.builds(
    Target,
    st.sampled_from([TargetKind.PROFILE, TargetKind.SUBPROFILE]),
    st.integers(1, 2**63 - 1).map(str),
)
targets = st.one_of(numbers, emails)


def check_safe(relpath: PurePosixPath) -> None:
    text = relpath.as_posix()
    assert not relpath.is_absolute()
    assert ".." not in relpath.parts and "." not in relpath.parts and "" not in relpath.parts
    assert SAFE.fullmatch(text), text
    assert len(text) < 200
    resolved = Path(os.path.normpath(ROOT / relpath))
    assert resolved.is_relative_to(ROOT)
    assert resolved.name.endswith(".json")


@settings(max_examples=400, deadline=None)
@given(targets)
def test_paths_stay_inside(target: Target) -> None:
    """Any valid target maps to a short relative path of safe characters inside DIR."""
    check_safe(export_relpath(target))


@settings(max_examples=200, deadline=None)
@given(st.lists(targets, min_size=2, max_size=20, unique_by=lambda t: t.key))
def test_distinct_targets_distinct_paths(batch: list[Target]) -> None:
    """Distinct targets never share a path, even compared case-insensitively."""
    paths = {export_relpath(t).as_posix().casefold() for t in batch}
    assert len(paths) == len(batch)


def test_case_variants_differ() -> None:
    """A@x.nl and a@x.nl (different local parts) get different files on any file system."""
    upper = export_relpath(Target(TargetKind.EMAIL, "A@x.nl")).as_posix()
    lower = export_relpath(Target(TargetKind.EMAIL, "a@x.nl")).as_posix()
    assert upper.casefold() != lower.casefold()


def test_truncated_names_differ() -> None:
    """Two long addresses that agree on their first 80 characters still differ."""
    stem = "a" * 63
    one = export_relpath(Target(TargetKind.EMAIL, f"{stem}1@{'d' * 40}.nl"))
    two = export_relpath(Target(TargetKind.EMAIL, f"{stem}2@{'d' * 40}.nl"))
    assert one != two


def test_layout() -> None:
    """Profiles are named by ID under a 3-hex bucket; the same target always gets the same path."""
    path = export_relpath(Target(TargetKind.PROFILE, "1001"))
    assert path.parts[:2] == ("exports", "profile")
    assert re.fullmatch(r"[0-9a-f]{3}", path.parts[2])
    assert path.name == "1001.json"
    assert export_relpath(Target(TargetKind.PROFILE, "1001")) == path
    gz = export_relpath(Target(TargetKind.PROFILE, "1001"), suffix=".json.gz")
    assert gz.name == "1001.json.gz"


def test_email_name_readable() -> None:
    """Email files carry a readable, lowercased form of the address plus a hash."""
    path = export_relpath(Target(TargetKind.EMAIL, "../Piet+x/..@example.nl"))
    assert re.fullmatch(r"_._piet\+x_\.\._at_example\.nl-[0-9a-f]{16}\.json", path.name)
    check_safe(path)


@pytest.mark.parametrize("suffix", ["/../x", "..", ".json/", "json\x00"])
def test_unsafe_suffix(suffix: str) -> None:
    """A suffix that could add a component or odd characters is refused."""
    with pytest.raises(ValueError, match="unsafe file suffix"):
        export_relpath(Target(TargetKind.PROFILE, "1"), suffix=suffix)


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "", "1\x002", "/abs", "."])
def test_unvalidated_ids_still_safe(bad_id: str) -> None:
    """Even a Target built without validate_id cannot produce an unsafe path."""
    check_safe(export_relpath(Target(TargetKind.PROFILE, bad_id)))
    check_safe(export_relpath(Target(TargetKind.EMAIL, bad_id)))
