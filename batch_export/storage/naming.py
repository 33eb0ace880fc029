"""Where a target's export lives: a safe, short, unique name relative to the sink's root.

The one function that decides it is ``export_relname``; a sink adds only its
suffix (``Sink.locate``), and the journal records the result.

Target IDs come from a user's CSV and, for emails, may hold almost anything
RFC 5322 allows in a local part — ``/``, ``..``, quotes, unicode. The path is
built so that:

* personal data can never escape the output directory: the result is always
  relative, has no ``.`` or ``..`` component and no separator except the ones
  put there on purpose;
* distinct targets never share a file, even on case-insensitive file systems
  (macOS, Windows: ``A@x.nl`` and ``a@x.nl`` are different targets) and after
  long names are cut: every email name ends in a hash of the exact target key;
* no directory grows huge: files are spread over 4096 buckets (the first three
  hex digits of the key's sha256), so 40 million exports leave about 10,000
  entries per directory;
* the same target always gets the same path, so resume finds its files.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re

from ..input.ids import Target, TargetKind

__all__ = ["export_relname", "lies_inside"]

_READABLE_MAX = 80  # characters of the email kept for humans browsing the directory
_UNSAFE = re.compile(r"[^a-z0-9._+-]")
_SUFFIX = re.compile(r"(?:\.[A-Za-z0-9]{1,10}){0,3}")
#: the suffixes sinks use, known to pass ``_SUFFIX`` (spares the regex per call)
_COMMON_SUFFIXES = frozenset({".json", ".json.gz"})
#: each kind's value, by member and by plain string (``TargetKind(...)`` costs more)
_KIND_VALUES: dict[str, str] = {kind: kind.value for kind in TargetKind}
_EMAIL = TargetKind.EMAIL.value


def _readable(text: str) -> str:
    """A lowercase ASCII rendering of ``text`` for the file name (not unique by itself)."""
    name = _UNSAFE.sub("_", text.lower().replace("@", "_at_"))[:_READABLE_MAX]
    # A leading dot hides the file; a leading hyphen reads as an option to shell tools.
    if name[:1] in (".", "-"):
        name = "_" + name[1:]
    return name


def export_relname(target: Target, *, suffix: str = ".json") -> str:
    """``exports/<kind>/<bucket>/<name><suffix>`` for ``target``; deterministic and safe.

    ``name`` is the canonical ID for (sub)profiles and a readable form of the
    address plus 16 hex digits of the key's hash for emails. ``suffix`` must be
    like ``.json`` or ``.json.gz``. Built as a string (``/`` separators): it is
    computed for every saved export, and pathlib would cost more than the hash.
    """
    if suffix not in _COMMON_SUFFIXES and _SUFFIX.fullmatch(suffix) is None:
        raise ValueError(f"unsafe file suffix {suffix!r}")
    # Once per export and per replayed done line: no enum calls, no properties.
    kind = _KIND_VALUES.get(target.kind) or TargetKind(target.kind).value
    return _relname(kind, target.id, suffix)


@functools.lru_cache(maxsize=4096)
def _relname(kind: str, ident: str, suffix: str) -> str:
    """``export_relname``'s work, remembered for the last few thousand targets.

    A saved export asks for its name twice, a trip apart: the store, to put
    the file there, and the journal's ``done`` line, to tell whether the file
    it records is the default one (``RecordedFiles``).
    """
    # The hash of ``target.key``; surrogatepass keeps the encoding injective
    # even for an id built outside validate_id that carries a lone surrogate.
    digest = hashlib.sha256(f"{kind}:{ident}".encode("utf-8", "surrogatepass")).hexdigest()
    if kind != _EMAIL and ident.isascii() and ident.isdigit() and len(ident) <= 20:
        name = ident
    else:
        # Emails, and defensively any id that did not pass validate_id.
        name = f"{_readable(ident) or '_'}-{digest[:16]}"
    return f"exports/{kind}/{digest[:3]}/{name}{suffix}"


def lies_inside(file: str) -> bool:
    """Whether a recorded name stays inside the sink's root, by its text alone.

    A manifest or journal line may have been tampered with: a name that is
    absolute, empty, or climbs out with ``..`` is never read, for files under
    DIR and for keys under a bucket prefix alike (symlinks aside: cheap).
    """
    return (
        bool(file) and not os.path.isabs(file) and os.path.normpath(file).partition("/")[0] != ".."
    )
