"""The ID listings: a database's profile IDs (paged) and a collection's subprofile IDs.

The IDs are deterministic: ascending from a base derived from the owner's ID,
as many as the configured database or collection holds.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from .replies import NUMERIC_ID, STATE, error

__all__ = ["get_profileids", "get_subprofileids"]


def _ids(owner: str, count: int, start: int, stop: int) -> list[int]:
    """Ascending IDs from a base derived from the owner's ID (deterministic)."""
    base = int(owner) * 100_000 + 1 if NUMERIC_ID.match(owner) else 1
    return list(range(base + start, base + min(stop, count)))


def _int_param(request: web.Request, name: str, default: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    return int(raw) if re.fullmatch(r"[0-9]{1,12}", raw) else None


async def get_profileids(request: web.Request) -> web.StreamResponse:
    """Paged profile IDs of a database (limit default 100, at most 1000)."""
    state = request.app[STATE]
    dbid = request.match_info["dbid"]
    count = state.config.databases.get(dbid)
    if count is None:
        return error(404, f"Database {dbid} does not exist")
    start = _int_param(request, "start", 0)
    limit = _int_param(request, "limit", 100)
    if start is None:
        return error(400, "start must be a whole number >= 0")
    if limit is None or limit > 1000:
        return error(400, "limit must be a whole number between 0 and 1000")
    ids = _ids(dbid, count, start, start + limit)
    if not state.config.wrap_id_lists:
        return web.json_response(ids)
    body: dict[str, Any] = {"start": start, "limit": limit, "count": len(ids)}
    if request.query.get("total", "").lower() not in ("false", "0", "no"):
        body["total"] = count
    body["data"] = ids
    return web.json_response(body)


async def get_subprofileids(request: web.Request) -> web.StreamResponse:
    """All subprofile IDs of a collection, unpaged (as documented)."""
    state = request.app[STATE]
    cid = request.match_info["cid"]
    count = state.config.collections.get(cid)
    if count is None:
        return error(404, f"Collection {cid} does not exist")
    return web.json_response(_ids(cid, count, 0, count))
