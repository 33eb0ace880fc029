"""Which header names the ID column, per kind, and what to say when none does.

A file without a recognised ID column is most often a subprofile or email
CSV read as profiles (the default ``--kind``), so the error says which
``--kind`` the columns (or a headerless first cell) fit, not only what was found.
"""

from __future__ import annotations

from ..errors import InputError
from .ids import TargetKind, is_valid_id

__all__ = ["COLUMN_NAMES", "no_id_column"]

# Header names recognised without --id-column, most specific first, so a file
# with both "ID" (say, a CRM row number) and "profile_id" uses the latter.
COLUMN_NAMES: dict[TargetKind, tuple[str, ...]] = {
    TargetKind.PROFILE: ("profile_id", "id", "profile"),
    TargetKind.SUBPROFILE: ("subprofile_id", "id", "subprofile"),
    TargetKind.EMAIL: ("email", "e-mail", "email_address", "id"),
}

_WHAT = {
    TargetKind.PROFILE: "profile IDs",
    TargetKind.SUBPROFILE: "subprofile IDs",
    TargetKind.EMAIL: "email addresses",
}


def _fitting_kinds(kind: TargetKind, names: list[str], first: str) -> list[TargetKind]:
    """The other kinds whose column names are in the header, or whose ID the first cell is."""
    return [
        other
        for other in TargetKind
        if other is not kind
        # "id" fits every kind, so it says nothing about which one was meant
        and (any(n in names for n in COLUMN_NAMES[other] if n != "id") or is_valid_id(other, first))
    ]


def no_id_column(kind: TargetKind, source: str, row: list[str]) -> InputError:
    """The error for a first row with no ``kind`` ID column, with a --kind hint if one fits."""
    names = [cell.strip().casefold() for cell in row]
    found = ", ".join(cell.strip() for cell in row)
    hint = "".join(
        f"For {_WHAT[other]}, pass --kind {other.value}. "
        for other in _fitting_kinds(kind, names, row[0] if row else "")
    )
    expected = ", ".join(COLUMN_NAMES[kind])
    return InputError(
        f"no {kind.value} ID column in {source}; columns found: {found}. {hint}"
        f"Else name the column one of {expected}, or pass its header with --id-column"
    )
