"""``batch-export ids``: every profile ID of a database, or subprofile ID of a collection.

A whole-account migration starts here instead of with a hand-made CSV. The
profile call is paged (``start``/``limit``, at most 1000 a page); the
subprofile call is documented unpaged. Both are documented as returning a
bare JSON array, while the API's other list calls wrap results in
``{"start", "limit", "count", "total", "data"}``: both shapes are accepted.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from ..durable import fsync_dir, open_private, write_all
from ..errors import ConfigError, TargetError
from .client import PlatformClient

__all__ = [
    "PAGE_LIMIT",
    "iter_collection_subprofile_ids",
    "iter_database_profile_ids",
    "write_id_csv",
]

PAGE_LIMIT = 1000


def _ids_of(document: Any, what: str) -> tuple[list[str], int | None]:
    """The IDs in one answer and, when the wrapped shape says so, the total."""
    total: int | None = None
    if isinstance(document, dict):
        raw_total = document.get("total")
        total = raw_total if isinstance(raw_total, int) else None
        document = document.get("data")
    if not isinstance(document, list):
        raise TargetError(f"the platform's {what} answer is not a list of IDs")
    ids: list[str] = []
    for item in document:
        value = item.get("ID", item.get("id")) if isinstance(item, dict) else item
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, str))
            or not str(value).strip().isdigit()
        ):
            raise TargetError(f"the platform's {what} answer holds a value that is not an ID")
        ids.append(str(value).strip())
    return ids, total


async def iter_database_profile_ids(
    client: PlatformClient, database_id: str, *, page_size: int = PAGE_LIMIT
) -> AsyncIterator[list[str]]:
    """Yield the database's profile IDs page by page."""
    path = f"database/{quote(database_id, safe='')}/profileids"
    start = 0
    while True:
        params = {"start": str(start), "limit": str(page_size), "total": "false"}

        async def page(params: dict[str, str] = params) -> Any:
            return await client.get_json(path, params)

        ids, total = _ids_of(await client.call(page), "profileids")
        if ids:
            yield ids
        start += len(ids)
        if len(ids) < page_size or (total is not None and start >= total):
            return


async def iter_collection_subprofile_ids(
    client: PlatformClient, collection_id: str
) -> AsyncIterator[list[str]]:
    """Yield the collection's subprofile IDs (one unpaged call)."""
    path = f"collection/{quote(collection_id, safe='')}/subprofileids"

    async def everything() -> Any:
        return await client.get_json(path)

    ids, _ = _ids_of(await client.call(everything), "subprofileids")
    yield ids


async def write_id_csv(
    client: PlatformClient,
    *,
    database_id: str | None,
    collection_id: str | None,
    output: Path | None,
    stdout: TextIO,
) -> int:
    """Write every ID of the database (or collection) as a one-column CSV; the count.

    Raises ConfigError when the platform refuses the listing (an unknown
    database, an answer that is not a list of IDs): nothing is left behind.
    """
    header = "profile_id" if database_id is not None else "subprofile_id"
    pages = (
        iter_database_profile_ids(client, database_id)
        if database_id is not None
        else iter_collection_subprofile_ids(client, str(collection_id))
    )
    if output is None:
        stdout.write(header + "\n")
        count = 0
        async for page in _translated(pages):
            stdout.write("".join(f"{value}\n" for value in page))
            count += len(page)
        return count
    return await _write_durably(output, header, pages)


async def _write_durably(output: Path, header: str, pages: AsyncIterator[list[str]]) -> int:
    partial = output.with_name(f".{output.name}.partial")
    fd = open_private(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    complete = False
    count = 0
    try:
        write_all(fd, (header + "\n").encode())
        async for page in _translated(pages):
            write_all(fd, "".join(f"{value}\n" for value in page).encode())
            count += len(page)
        os.fsync(fd)
        complete = True
    finally:
        os.close(fd)
        if complete:
            os.replace(partial, output)
            fsync_dir(output.parent)
        else:
            partial.unlink(missing_ok=True)
    return count


async def _translated(pages: AsyncIterator[list[str]]) -> AsyncIterator[list[str]]:
    """The pages, with a refused listing named as the configuration error it is."""
    try:
        async for page in pages:
            yield page
    except TargetError as exc:
        raise ConfigError(str(exc)) from None
