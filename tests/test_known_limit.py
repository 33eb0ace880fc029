"""The remembered rate limit: keyed by account, owner-only, never the token, robust to damage."""

from __future__ import annotations

import hashlib
import json
import logging
import stat
from pathlib import Path

import pytest

from batch_export.platform.known_limit import (
    CACHE_ENV,
    CACHE_FILE,
    KEY_FILE,
    OUT_FILE,
    LimitMemory,
    default_cache_dir,
    remembering_limiter,
)
from batch_export.platform.settings import ApiSettings
from batch_export.redaction import Secret

API = "https://api.copernica.com"
TOKEN = "tok-3f9a1c0d-very-secret"


def _memory(tmp_path: Path, token: str = TOKEN, out: str = "out", api: str = API) -> LimitMemory:
    out_dir = tmp_path / out
    out_dir.mkdir(exist_ok=True)
    return LimitMemory(api, 2, token, out_dir, tmp_path / "cache")


def _every_file(tmp_path: Path) -> list[Path]:
    return [path for path in tmp_path.rglob("*") if path.is_file()]


def test_a_remembered_limit_is_recalled_by_another_output_directory(tmp_path: Path) -> None:
    """Saved by one run, read by the next in another directory (from the cache), newest first."""
    first = _memory(tmp_path, out="march")
    assert first.recall() is None
    first.remember(87.5)
    again = _memory(tmp_path, out="march").recall()
    assert again is not None and again.rate == 87.5
    elsewhere = _memory(tmp_path, out="april").recall()
    assert elsewhere is not None and elsewhere.rate == 87.5 and elsewhere.source == "cache"


def test_the_limit_is_keyed_by_account_and_never_holds_the_token(tmp_path: Path) -> None:
    """Another token or another API host sees nothing; no file holds the token or its plain hash."""
    _memory(tmp_path).remember(40.0)
    assert _memory(tmp_path, token="another-token").recall() is None
    assert _memory(tmp_path, api="https://api.example.net").recall() is None
    plain = hashlib.sha256(TOKEN.encode()).hexdigest()
    for path in _every_file(tmp_path):
        data = path.read_bytes()
        assert TOKEN.encode() not in data and plain.encode() not in data, path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert "tok-" not in repr(_memory(tmp_path))


def test_a_limit_that_rose_or_fell_replaces_the_old_one(tmp_path: Path) -> None:
    """The newest saved pace wins, whichever way the limit moved."""
    memory = _memory(tmp_path)
    memory.remember(100.0)
    memory.remember(30.0)  # the account's limit fell
    known = _memory(tmp_path).recall()
    assert known is not None and known.rate == 30.0
    memory.remember(55.0)  # and rose again
    known = _memory(tmp_path).recall()
    assert known is not None and known.rate == 55.0


@pytest.mark.parametrize(
    "damage",
    [b"", b"{not json", b"[1, 2]", b'{"accounts": {"x": 1}}', b'{"key": 1, "rate": "fast"}'],
)
def test_a_damaged_file_is_ignored(
    tmp_path: Path, damage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A corrupt cache or output-directory file means "nothing remembered", never an error."""
    memory = _memory(tmp_path)
    memory.remember(20.0)
    (tmp_path / "cache" / CACHE_FILE).write_bytes(damage)
    (tmp_path / "out" / OUT_FILE).write_bytes(damage)
    with caplog.at_level(logging.DEBUG, logger="batch_export.platform.known_limit"):
        assert _memory(tmp_path).recall() is None
    memory.remember(25.0)  # and the next save repairs them
    known = _memory(tmp_path).recall()
    assert known is not None and known.rate == 25.0


def test_a_rate_only_in_the_output_directory_still_counts(tmp_path: Path) -> None:
    """A resumed run whose cache lost the entry still finds the limit beside its journal."""
    _memory(tmp_path).remember(64.0)
    (tmp_path / "cache" / CACHE_FILE).unlink()
    known = _memory(tmp_path).recall()
    assert known is not None and known.rate == 64.0 and known.source == "output directory"


def test_an_unusable_cache_directory_remembers_nothing(tmp_path: Path) -> None:
    """A cache path that is a file: no secret, so nothing is read or written, and no error."""
    blocker = tmp_path / "cache"
    blocker.write_text("not a directory")
    memory = _memory(tmp_path)
    memory.remember(50.0)
    assert memory.recall() is None
    assert not (tmp_path / "out" / OUT_FILE).exists()


def test_a_short_secret_is_not_used(tmp_path: Path) -> None:
    """A truncated key file is refused rather than keying with a guessable secret."""
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / KEY_FILE).write_bytes(b"abc")
    assert _memory(tmp_path).key() is None


def test_the_cache_directory_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BATCH_EXPORT_CACHE_DIR points the cache elsewhere (tests never write $HOME)."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir().name == "batch-export"


def _account(tmp_path: Path) -> tuple[ApiSettings, Path, Path]:
    """The test account's settings, an output directory and a cache directory."""
    out = tmp_path / "out"
    out.mkdir()
    return ApiSettings(api_url=API, token=Secret(TOKEN)), out, tmp_path / "cache"


async def test_a_given_rate_wins_and_a_remembered_one_starts_the_search(tmp_path: Path) -> None:
    """--rate is used as given and nothing is remembered; without it the search starts there."""
    api, out, cache = _account(tmp_path)
    limiter, memory = remembering_limiter(None, 4, api, out, cache)
    assert memory is not None and limiter.origin == "search"
    assert limiter.search is not None and limiter.rate == limiter.search.initial_rate
    await memory.flush(42.0)
    given, none = remembering_limiter(7.0, 4, api, out, cache)
    assert none is None and given.rate == 7.0 and given.origin == "--rate"
    limiter, memory = remembering_limiter(None, 4, api, out, cache)
    assert limiter.rate == 42.0 and limiter.origin.startswith("remembered")
    assert json.loads((out / OUT_FILE).read_text())["rate"] == 42.0


async def test_a_pace_the_search_fell_to_replaces_a_remembered_one_above_it(tmp_path: Path) -> None:
    """Unsettled at the end, but under what was remembered: the lower pace is kept, not the old."""
    api, out, cache = _account(tmp_path)
    _, memory = remembering_limiter(None, 4, api, out, cache)
    assert memory is not None
    await memory.flush(57.0)  # settled at 57 once
    await memory.flush(None, fell_to=60.0)  # a higher unsettled pace is no news
    assert json.loads((out / OUT_FILE).read_text())["rate"] == 57.0
    await memory.flush(None, fell_to=46.0)  # refused since, and fell: 57 was too high
    assert json.loads((out / OUT_FILE).read_text())["rate"] == 46.0

    limiter, memory = remembering_limiter(None, 4, api, out, cache)  # the next run starts at 46
    assert memory is not None and limiter.rate == 46.0
    await memory.flush(None, fell_to=40.0)  # fell under the recalled pace, never settled
    _, memory = remembering_limiter(None, 4, api, out, cache)
    assert memory is not None and memory.recall() is not None
    assert json.loads((out / OUT_FILE).read_text())["rate"] == 40.0
