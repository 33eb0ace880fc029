"""What a run is asked to do and what it did: ``RunOptions``, ``RunResult``, the exit codes.

``RunOptions`` validates itself when it is built, so an impossible setting
is refused with a message that says how to fix it before anything else
happens (each settings object it holds, ``ApiSettings`` and
``RetryPolicy``, validates itself the same way).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StorageError
from ..evidence.manifest import RunCounts
from ..input.ids import TargetKind
from ..platform.limits import RetryPolicy, check_rate
from ..platform.push_keys import parse_dns_server
from ..platform.push_origin import account_header
from ..platform.settings import ApiSettings
from ..redaction import Redactor
from ..storage.s3_settings import S3Settings
from .tally import ProgressSnapshot

__all__ = [
    "EXIT_CONFIG",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "RunOptions",
    "RunResult",
    "cannot_write",
    "split_listen",
]

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_CONFIG = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


@dataclass(frozen=True)
class RunOptions:
    """Everything a run needs; the CLI builds one from its options. Validated when built."""

    input: str
    out_dir: Path
    api: ApiSettings
    kind: TargetKind = TargetKind.PROFILE
    id_column: str | None = None
    encoding: str = "utf-8"
    rate: float | None = None
    burst: int = 4
    #: where the account's limit is remembered (None: $BATCH_EXPORT_CACHE_DIR or the user cache)
    cache_dir: Path | None = None
    concurrency: int = 16
    max_pending: int = 500
    timeout: float = 3600.0
    report: str | None = None
    gzip: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_reissues: int = 5
    stall_timeout: float = 900.0
    grace: float = 10.0
    progress: bool = False
    handle_signals: bool = True
    stdin: Any = None
    #: shared with the CLI's log filter so JWTs learnt mid-run are scrubbed there too
    redactor: Redactor | None = None
    #: push mode: "HOST:PORT" to listen on for exports the platform POSTs to us
    push_listen: str | None = None
    #: push mode: the URL under which the platform reaches the listener
    push_public_url: str | None = None
    #: push mode: seconds to wait for a delivery before polling instead
    push_grace: float = 60.0
    #: push mode: the account signed deliveries must name (``123`` or ``account_123``)
    account_id: str | None = None
    #: push mode: refuse deliveries that carry no Signature
    push_require_signature: bool = False
    #: push mode: "HOST[:PORT]" of the DNS server to ask for DKIM keys (None: the system's)
    push_dns_server: str | None = None
    #: push mode: DKIM TXT records by name, used instead of DNS (``--simulate``'s own key)
    push_dkim_records: Mapping[str, str] | None = None
    #: ``--to s3://…``: exports go to object storage (None: files under ``out_dir/exports``)
    destination: S3Settings | None = None
    #: ``--sign-key``: the Ed25519 private key that signs each seal (None: unsigned seals)
    sign_key: Path | None = None
    #: ``--stats-interval``: seconds between progress lines in the log (0: none)
    stats_interval: float = 0.0
    #: ``--metrics-file``: Prometheus text file rewritten during and at the end of the run
    metrics_file: Path | None = None
    #: Python API: called with a ``ProgressSnapshot`` every ``progress_interval`` s and at the end
    on_progress: Callable[[ProgressSnapshot], None] | None = None
    progress_interval: float = 1.0

    def __post_init__(self) -> None:
        """Reject impossible settings with a message that says how to fix them."""
        check_rate(self.rate)
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if self.max_pending < 1:
            raise ConfigError("--max-pending must be at least 1")
        if self.timeout <= 0:
            raise ConfigError("--timeout must be greater than 0 seconds")
        if self.stats_interval < 0:
            raise ConfigError("--stats-interval must be 0 (off) or a number of seconds")
        if self.progress_interval <= 0:
            raise ConfigError("progress_interval must be greater than 0 seconds")
        if self.stall_timeout <= 0:
            raise ConfigError("--stall-timeout must be greater than 0 seconds")
        if self.push_listen is not None:
            if self.report:
                raise ConfigError(
                    "--report and --push-listen both set the platform's report address; use one"
                )
            split_listen(self.push_listen)
        self._check_origin()

    def _check_origin(self) -> None:
        """The proof-of-origin options need push mode, and well-formed values."""
        given = [
            name
            for name, value in (
                ("--account-id", self.account_id),
                ("--push-require-signature", self.push_require_signature or None),
                ("--push-dns-server", self.push_dns_server),
            )
            if value is not None
        ]
        if given and self.push_listen is None:
            raise ConfigError(
                f"{' and '.join(given)} check{'s' if len(given) == 1 else ''} pushed deliveries: "
                "add --push-listen HOST:PORT to receive them, or leave "
                f"{'it' if len(given) == 1 else 'them'} out"
            )
        if self.account_id is not None:
            account_header(self.account_id)
        if self.push_dns_server is not None:
            parse_dns_server(self.push_dns_server)


@dataclass
class RunResult:
    """What a finished (or stopped) run did."""

    exit_code: int
    counts: RunCounts
    out_dir: Path
    summary: dict[str, Any]
    interrupted: str | None = None


def split_listen(address: str) -> tuple[str, int]:
    """``--push-listen HOST:PORT`` as a host and a port (ConfigError if it is not that)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--push-listen {address!r} is not HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def cannot_write(out_dir: Path, exc: OSError) -> StorageError:
    """The error that stops a run whose output directory cannot be written."""
    return StorageError(f"cannot write to {out_dir}: {exc.strerror or exc}")
