"""Small export bodies for the store's tests: a body that arrived whole, and its empty rest."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from batch_export.input.ids import Target


def small_export(target: Target) -> bytes:
    """A valid export of ``target``, about 550 bytes: the store keeps it whole in memory."""
    doc = {"info": {"type": target.kind.value, "id": target.id}, "data": [["message", "x" * 500]]}
    return json.dumps(doc).encode()


async def no_more_chunks() -> AsyncIterator[bytes]:
    """The rest of a body that arrived whole: nothing."""
    nothing: tuple[bytes, ...] = ()
    for chunk in nothing:
        yield chunk
