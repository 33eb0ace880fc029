"""The progress bars on stderr: each bar counts its own event."""

from __future__ import annotations

import io

from batch_export.run.progress import Progress


def test_a_failure_advances_the_failed_bar_and_not_the_saved_one() -> None:
    """'saved' counts only exports saved; a target that failed counts under 'failed' alone."""
    stream = io.StringIO()
    progress = Progress(stream)
    progress.start(total=3, already_done=0, invalid=0)
    progress.saved(100)
    progress.failed()
    progress.failed()
    assert (progress._saved.n, progress._failed.n) == (1, 2)
    progress.close()
