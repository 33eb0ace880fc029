"""Reading a HEAD answer against what the journal recorded of an object (its ``store``).

Resume and ``verify`` ask the same question of an object: is it still
exactly what was uploaded? One HEAD answers it without reading the bytes:
the size, S3's SHA-256 checksum (the object's own for a single PUT, the
composite "checksum of the parts' checksums"-N for a multipart upload), the
version (an overwrite in a versioned bucket makes a new current version,
even when the recorded one is still retained beneath it) and the lock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["differences", "store_record"]


def store_record(head: dict[str, Any]) -> dict[str, Any]:
    """The ``store`` record of an object, from its HEAD answer (or from the
    arguments and the answer of its upload, which use the same field names)."""
    until = head.get("ObjectLockRetainUntilDate")
    store: dict[str, Any] = {
        "checksum": head.get("ChecksumSHA256"),
        "version": head.get("VersionId"),
        "lock_mode": head.get("ObjectLockMode"),
        "retain_until": _utc(until).isoformat() if isinstance(until, dt.datetime) else None,
        "legal_hold": True if head.get("ObjectLockLegalHoldStatus") == "ON" else None,
    }
    return {name: value for name, value in store.items() if value is not None}


def differences(head: dict[str, Any], size: int, store: dict[str, Any] | None) -> str | None:
    """What differs between the object and the record, or None when it is what was recorded."""
    stored_size = head.get("ContentLength")
    if stored_size != size:
        return f"size is {stored_size} bytes, the manifest says {size}"
    if not store:
        return None
    version = store.get("version")
    if version is not None and head.get("VersionId") != version:
        return (
            f"the object was replaced: its current version is {head.get('VersionId')}, "
            f"the manifest recorded {version} (that version may still be retained in the bucket)"
        )
    checksum = store.get("checksum")
    if checksum is not None:
        found = head.get("ChecksumSHA256")
        if found is None:
            return "the server reports no SHA-256 checksum for the object (verify --deep reads it)"
        if found != checksum:
            return "the object's checksum differs from the manifest (it was changed)"
    return _lock_problem(head, store)


def _lock_problem(head: dict[str, Any], store: dict[str, Any]) -> str | None:
    """Whether the object is still locked at least as the record says."""
    recorded = store.get("retain_until")
    if recorded is not None:
        mode = head.get("ObjectLockMode")
        until = head.get("ObjectLockRetainUntilDate")
        if mode is None or not isinstance(until, dt.datetime):
            return f"the object is not locked (the manifest recorded {store.get('lock_mode')} until {recorded})"
        if _utc(until) < dt.datetime.fromisoformat(recorded):
            return f"the object's retention was shortened to {_utc(until).isoformat()} (recorded: {recorded})"
        if mode != store.get("lock_mode"):
            return (
                f"the object's lock mode is {mode}, the manifest recorded {store.get('lock_mode')}"
            )
    if store.get("legal_hold") and head.get("ObjectLockLegalHoldStatus") != "ON":
        return "the object's legal hold was removed"
    return None


def _utc(moment: dt.datetime) -> dt.datetime:
    return (
        moment.astimezone(dt.timezone.utc)
        if moment.tzinfo
        else moment.replace(tzinfo=dt.timezone.utc)
    )
