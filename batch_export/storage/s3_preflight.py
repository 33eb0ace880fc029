"""Before the first data request: is the bucket there, are the credentials good, can it lock?

A run that would fail at its first upload fails here instead, before it
asks the platform for anything, with exit 2 and what to change. And what a
killed run left half-uploaded (multipart uploads under the prefix) is
aborted, under the state directory's lock, so no orphaned parts are billed.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from ..errors import ConfigError
from .s3_calls import S3Calls, error_code

__all__ = ["abort_orphaned_uploads", "check_bucket"]

log = logging.getLogger(__name__)

#: how long the first call is retried: unreachable at the start is more often a wrong
#: --s3-endpoint-url than an outage, and nothing has been asked of the platform yet
STARTUP_PATIENCE = 30.0


async def check_bucket(calls: S3Calls) -> None:
    """Reachable, credentials accepted, and with retention: versioning and Object Lock on."""
    settings = calls.settings
    location = settings.location
    try:
        await calls.call(
            "list_objects_v2",
            Bucket=location.bucket,
            Prefix=location.key(""),
            MaxKeys=1,
            retry_for=min(settings.retry_for, STARTUP_PATIENCE),
        )
    except ClientError as exc:
        raise calls.refused(exc, "list_objects_v2", location.url) from None
    if settings.retention is None:
        return
    bucket = location.bucket
    try:
        versioning = await calls.call("get_bucket_versioning", Bucket=bucket)
        status = versioning.get("Status")
        lock = await _lock_configuration(calls)
    except ClientError as exc:
        raise calls.refused(exc, "get_object_lock_configuration", f"bucket {bucket}") from None
    if lock != "Enabled":
        raise ConfigError(
            f"bucket {bucket!r} does not have Object Lock enabled, so retention cannot be "
            "applied. Object Lock is chosen when a bucket is created (aws s3api create-bucket "
            "--object-lock-enabled-for-bucket; on AWS it can also be turned on for an existing "
            "versioned bucket with put-object-lock-configuration). Use such a bucket, or run "
            "without --retention-days/--retain-until/--legal-hold"
        )
    if status != "Enabled":
        raise ConfigError(
            f"bucket {bucket!r} has Object Lock but versioning is {status or 'off'}: "
            "enable versioning (aws s3api put-bucket-versioning --versioning-configuration "
            "Status=Enabled)"
        )


async def _lock_configuration(calls: S3Calls) -> str | None:
    """``ObjectLockEnabled`` of the bucket; None when it has no Object Lock configuration."""
    try:
        answer = await calls.call(
            "get_object_lock_configuration", Bucket=calls.settings.location.bucket
        )
    except ClientError as exc:
        if error_code(exc) in ("ObjectLockConfigurationNotFoundError", "404"):
            return None
        raise
    enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
    return str(enabled) if enabled else None


async def abort_orphaned_uploads(calls: S3Calls) -> int:
    """Abort every multipart upload under the prefix's ``exports/``; how many there were.

    Only under the lock: the uploads of a run that holds it are its work in
    progress. One state directory per bucket prefix (docs/object-storage.md).
    """
    location = calls.settings.location
    prefix = location.key("exports/")
    aborted = 0
    key_marker: str | None = None
    upload_marker: str | None = None
    while True:
        page_arguments: dict[str, Any] = {"Bucket": location.bucket, "Prefix": prefix}
        if key_marker:
            page_arguments["KeyMarker"] = key_marker
        if upload_marker:
            page_arguments["UploadIdMarker"] = upload_marker
        try:
            page = await calls.call("list_multipart_uploads", **page_arguments)
        except ClientError as exc:
            raise calls.refused(exc, "list_multipart_uploads", location.url) from None
        for upload in page.get("Uploads", []):
            try:
                await calls.call(
                    "abort_multipart_upload",
                    Bucket=location.bucket,
                    Key=upload["Key"],
                    UploadId=upload["UploadId"],
                )
            except ClientError as exc:
                if error_code(exc) != "NoSuchUpload":
                    raise calls.refused(exc, "abort_multipart_upload", location.url) from None
            aborted += 1
        if not page.get("IsTruncated"):
            break
        key_marker = page.get("NextKeyMarker")
        upload_marker = page.get("NextUploadIdMarker")
    if aborted:
        log.info("aborted %d multipart upload(s) a killed run left in %s", aborted, location.url)
    return aborted
