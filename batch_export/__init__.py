"""batch_export: bulk, resumable, verified export of Copernica GDPR data requests.

The public Python API is re-exported here; everything else is internal.
Without an event loop, ``export`` runs one export and blocks until it ends
(``simulate=True``: against the embedded simulator, no account needed):

    from batch_export import ProgressSnapshot, export

    def show(progress: ProgressSnapshot) -> None:
        print(f"{progress.done}/{progress.total} done")

    result = export("profiles.csv", "exports", token=token, rate=20, on_progress=show)
    print(result.exit_code, result.counts)

From async code, ``run_export`` does the same with a ``RunOptions``:

    result = await run_export(RunOptions(
        input="profiles.csv", out_dir=Path("exports"),
        api=ApiSettings(token=Secret(token)), rate=20))
"""

from ._version import __version__
from .errors import (
    AuthError,
    ConfigError,
    ExportError,
    InputError,
    IntegrityError,
    InternalError,
    MalformedExportError,
    OutageError,
    RateLimitedError,
    RequestGoneError,
    StorageError,
    TargetError,
    TransientError,
    UnreachableError,
    WrongTargetError,
)
from .input.ids import Target, TargetKind
from .platform.limits import RateLimiter, RetryPolicy
from .platform.settings import ApiSettings
from .redaction import Secret
from .run.options import RunOptions, RunResult
from .run.orchestrate import run_export
from .run.sync_api import export
from .run.tally import ProgressSnapshot

__all__ = [
    "ApiSettings",
    "AuthError",
    "ConfigError",
    "ExportError",
    "InputError",
    "IntegrityError",
    "InternalError",
    "MalformedExportError",
    "OutageError",
    "ProgressSnapshot",
    "RateLimitedError",
    "RateLimiter",
    "RequestGoneError",
    "RetryPolicy",
    "RunOptions",
    "RunResult",
    "Secret",
    "StorageError",
    "Target",
    "TargetError",
    "TargetKind",
    "TransientError",
    "UnreachableError",
    "WrongTargetError",
    "__version__",
    "export",
    "run_export",
]
