"""batch_export: bulk, resumable, verified export of Copernica GDPR data requests.

The public Python API is re-exported here; everything else is internal.

    import asyncio
    from pathlib import Path
    from batch_export import ApiSettings, RunOptions, Secret, run_export

    result = asyncio.run(run_export(RunOptions(
        input="profiles.csv", out_dir=Path("exports"),
        api=ApiSettings(token=Secret(token)), rate=20)))
    print(result.exit_code, result.counts)
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
    "run_export",
]
