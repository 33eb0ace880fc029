"""A simulated (demo) run leaves the user's files alone: its limit cache is thrown away."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from batch_export import export
from batch_export.platform.known_limit import CACHE_ENV

from .conftest import write_ids


def test_simulated_run_remembers_its_limit_in_a_throwaway_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither $BATCH_EXPORT_CACHE_DIR nor $HOME's cache gets the simulator's limit; the temp dir goes."""
    cache = tmp_path / "user-cache"
    home = tmp_path / "home"
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv(CACHE_ENV, str(cache))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    # Where TemporaryDirectory makes its directories, so the test sees it removed.
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    csv = write_ids(tmp_path / "ids.csv", range(1001, 1011))
    result = export(csv, tmp_path / "out", simulate=True)
    assert result.exit_code == 0
    assert (result.counts.done, result.counts.pending) == (10, 0)
    assert not cache.exists()
    assert not home.exists()
    assert list(temp.iterdir()) == []
