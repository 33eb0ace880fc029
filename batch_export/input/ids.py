"""What one target is, and which IDs can be used: canonical, validated, never guessed.

A profile or subprofile ID is a positive integer (``123.0`` from a
spreadsheet is accepted as ``123``); an email address is checked for the
characters that would break a URL path or mislead a person reading a
manifest. ``validate_id`` raises ``ValueError`` with a reason ready to print.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

__all__ = ["SHOWN_CHARS", "Target", "TargetKind", "is_valid_id", "validate_id"]


class TargetKind(str, enum.Enum):
    """What an ID in the input names on the platform."""

    PROFILE = "profile"
    SUBPROFILE = "subprofile"
    EMAIL = "email"


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to export; ``id`` is canonical (see :func:`validate_id`)."""

    kind: TargetKind
    id: str

    @property
    def key(self) -> str:
        """``kind:id``: unique per target, what its export's file name is hashed from."""
        return f"{self.kind.value}:{self.id}"


_MAX_ID = 2**63 - 1
#: raw values are cut to this many characters in messages and the manifest
SHOWN_CHARS = 100
_DIGITS = re.compile(r"[0-9]+")
# Excel and pandas write integer columns that passed through a float as "123.0".
# Only exactly one zero is accepted: "1.000" may be a thousands separator.
_FLOAT_INT = re.compile(r"([0-9]+)\.0")
_NEGATIVE = re.compile(r"-\s*[0-9]+(?:[.,][0-9]+)?")
_FRACTION = re.compile(r"[0-9]*[.,][0-9]+")
_SCIENTIFIC = re.compile(r"[0-9]+(?:[.,][0-9]+)?[eE][+-]?[0-9]+")
# Specials of RFC 5322 that are only legal inside a quoted local part; in a CSV
# cell they nearly always mean two addresses or a display name got mixed in.
_LOCAL_SPECIALS = frozenset('()<>[]:;,\\"')
# The common case — a plain ASCII address — is accepted by one regex; anything
# else takes the slow path, which accepts a superset and explains rejections.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_EMAIL = re.compile(rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~.-]{{1,64}}@(?:{_LABEL}\.)+{_LABEL}")


def _show(raw: str) -> str:
    """The raw value quoted and escaped for a message, cut to a readable length."""
    if len(raw) > SHOWN_CHARS:
        return repr(raw[:SHOWN_CHARS]) + "…"
    return repr(raw)


def _validate_number(kind: TargetKind, raw: str) -> str:
    what = f"{kind.value} ID"
    text = raw.strip()
    if not text:
        raise ValueError(f"empty {what}")
    if _DIGITS.fullmatch(text) is None:
        match = _FLOAT_INT.fullmatch(text)
        if match is not None:
            text = match.group(1)
        elif _NEGATIVE.fullmatch(text):
            raise ValueError(f"{_show(raw)} is not a {what} (negative; IDs start at 1)")
        elif _FRACTION.fullmatch(text):
            raise ValueError(f"{_show(raw)} is not a {what} (not a whole number)")
        elif _SCIENTIFIC.fullmatch(text):
            raise ValueError(
                f"{_show(raw)} is not a {what} (scientific notation: a spreadsheet may have "
                "rounded it; format the column as text and export again)"
            )
        else:
            raise ValueError(f"{_show(raw)} is not a {what} (expected a whole number >= 1)")
    canonical = text.lstrip("0")
    if not canonical:
        raise ValueError(f"{_show(raw)} is not a {what} (zero; IDs start at 1)")
    # Compare lengths before int(): a 5,000-digit cell must not hit int()'s
    # digit limit or cost quadratic time.
    if len(canonical) > 19 or int(canonical) > _MAX_ID:
        raise ValueError(f"{_show(raw)} is not a {what} (too large; the maximum is {_MAX_ID})")
    return canonical


def _bad_char(text: str) -> str | None:
    """The first whitespace or control/format/unassigned character, if any."""
    for ch in text:
        if ch.isspace() or unicodedata.category(ch)[0] == "C":
            return ch
    return None


def _validate_email(raw: str) -> str:
    text = raw.strip()
    if len(text) <= 254 and _PLAIN_EMAIL.fullmatch(text) is not None:
        local, _, domain = text.partition("@")
        return f"{local}@{domain.lower()}"
    shown = _show(raw)
    local, domain = _split_address(text, shown)
    # Domains are case-insensitive; local parts may not be (RFC 5321), so only
    # the domain is folded — before checking it, as lower() can change a
    # character's class ('İ' becomes 'i' plus a combining dot).
    domain = domain.lower()
    _check_local_part(local, shown)
    _check_domain(domain, shown)
    canonical = f"{local}@{domain}"
    if len(canonical) > 254:
        raise ValueError(f"{shown} is not an email address (longer than 254 characters)")
    return canonical


def _split_address(text: str, shown: str) -> tuple[str, str]:
    """The local part and the domain of an address that is one line with one '@'."""
    if not text:
        raise ValueError("empty email address")
    bad = _bad_char(text)
    if bad is not None:
        raise ValueError(
            f"{shown} is not an email address (contains whitespace or control character {bad!r})"
        )
    if len(text) > 254:
        raise ValueError(f"{shown} is not an email address (longer than 254 characters)")
    ats = text.count("@")
    if ats != 1:
        problem = "no '@'" if ats == 0 else "more than one '@'"
        raise ValueError(f"{shown} is not an email address ({problem})")
    local, domain = text.split("@")
    return local, domain


def _check_local_part(local: str, shown: str) -> None:
    if not local:
        raise ValueError(f"{shown} is not an email address (nothing before the '@')")
    if len(local) > 64:
        raise ValueError(f"{shown} is not an email address (part before '@' exceeds 64 characters)")
    special = next((ch for ch in local if ch in _LOCAL_SPECIALS), None)
    if special is not None:
        raise ValueError(f"{shown} is not an email address ({special!r} before the '@')")


def _check_domain(domain: str, shown: str) -> None:
    if not domain:
        raise ValueError(f"{shown} is not an email address (nothing after the '@')")
    if "." not in domain:
        raise ValueError(f"{shown} is not an email address (domain {domain!r} has no dot)")
    for label in domain.split("."):
        _check_domain_label(label, domain, shown)


def _check_domain_label(label: str, domain: str, shown: str) -> None:
    if not label:
        raise ValueError(f"{shown} is not an email address (domain {domain!r} has an empty part)")
    if len(label) > 63:
        raise ValueError(f"{shown} is not an email address (domain part longer than 63 characters)")
    # isalnum() admits IDN letters (bücher.de); punycode labels are ASCII anyway.
    wrong = next((ch for ch in label if not (ch.isalnum() or ch == "-")), None)
    if wrong is not None:
        raise ValueError(f"{shown} is not an email address ({wrong!r} in the domain)")
    if label.startswith("-") or label.endswith("-"):
        raise ValueError(
            f"{shown} is not an email address (domain part {label!r} starts or ends with '-')"
        )


def validate_id(kind: TargetKind, raw: str) -> str:
    """The canonical ID for ``raw``, or :class:`ValueError` whose text says what is wrong.

    Profiles and subprofiles: decimal digits, leading zeros dropped, ``123.0``
    read as 123, 1..2**63-1. Emails: stripped, domain lowercased, local part
    kept as given. A canonical ID never holds whitespace, control characters
    or NUL.
    """
    if kind is TargetKind.EMAIL:
        return _validate_email(raw)
    return _validate_number(kind, raw)


def is_valid_id(kind: TargetKind, raw: str) -> bool:
    """Whether ``raw`` is a usable ID of ``kind`` (``validate_id`` without the reason)."""
    try:
        validate_id(kind, raw)
    except ValueError:
        return False
    return True
