"""Push mode within a run: the receiver, waiting for a delivery, settling conflicts.

With ``--push-listen`` the run starts a ``PushReceiver`` and passes its URL
as the platform's ``report`` address. After submitting, a target waits up
to ``--push-grace`` seconds for a delivery (``PushMode.wait``) before it
polls. When two different exports are delivered for one target, neither is
trusted: a ``push-conflict`` line is recorded and the platform's own copy is
fetched and kept, with a new ``done`` line (docs/push-mode.md, "Conflicts").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from ..errors import (
    ConfigError,
    ExportError,
    MalformedExportError,
    RequestGoneError,
    TargetError,
    TransientError,
)
from ..evidence.journal import Journal
from ..input.ids import Target
from ..platform.client import PlatformClient
from ..platform.push import PushConflict, PushReceiver, save_digesting, wait_for_push
from ..platform.push_keys import DnsKeys, KeySource, StaticKeys, parse_dns_server
from ..platform.push_origin import OriginVerifier, account_header
from ..redaction import Redactor
from ..storage.sink import SavedExport, Sink
from ..storage.validate import PlaceholderError
from .options import RunOptions, cannot_write, split_listen
from .scheduling import ReadinessModel
from .window import Stopped, TaskWindow

__all__ = ["ErrorHandler", "PushMode", "origin_verifier"]

log = logging.getLogger(__name__)

#: how the exporter settles an exception met for a target: failed, or the run stopped;
#: the third argument words the failure
ErrorHandler = Callable[[Target, Exception, Callable[[ExportError], str]], Awaitable[None]]


class PushMode:
    """The receiver of pushed exports for one run, and the settling of conflicting deliveries."""

    def __init__(
        self,
        options: RunOptions,
        sink: Sink,
        window: TaskWindow,
        model: ReadinessModel,
        on_error: ErrorHandler,
    ) -> None:
        self.options = options
        self.sink = sink
        self.window = window
        self.model = model
        self._on_error = on_error
        self.receiver: PushReceiver
        self._client: PlatformClient
        self._journal: Journal

    async def start(
        self,
        stack: contextlib.AsyncExitStack,
        client: PlatformClient,
        journal: Journal,
        redactor: Redactor,
    ) -> str:
        """Listen for pushed exports until ``stack`` closes; the report URL for every POST.

        When two different exports are delivered for one target, the receiver
        calls ``_on_conflict`` before acknowledging the second. It records a
        ``push-conflict`` line (durable: replay reopens the target with its
        request ID) and starts a task, tracked by the window so the run waits
        for it, that fetches the export from the platform and keeps that,
        with a new ``done`` line (docs/push-mode.md, "Conflicts").
        """
        assert self.options.push_listen is not None
        listen = self.options.push_listen
        host, port = split_listen(listen)
        self._client, self._journal = client, journal
        receiver = PushReceiver(
            self.sink,
            self.options.kind,
            host=host,
            port=port,
            public_url=self.options.push_public_url,
            on_conflict=self._on_conflict,
            origin=origin_verifier(self.options),
        )
        try:
            self.receiver = await stack.enter_async_context(receiver)
        except OSError as exc:
            raise ConfigError(f"cannot listen on --push-listen {listen}: {exc.strerror}") from None
        stack.push_async_exit(self._close)
        # The URL's path is the receiver's only credential: scrub it like the token.
        redactor.add(receiver.report_url)
        log.info("push mode: listening on %s", receiver.address)
        if self.options.push_require_signature:
            log.info("push mode: only deliveries signed by the platform are accepted")
        return receiver.report_url

    def counts(self) -> dict[str, int]:
        """Deliveries received, rejected, and received with a verified signature (for the summary)."""
        receiver = self.receiver
        return {
            "received": receiver.received,
            "rejected": receiver.rejected,
            "verified": receiver.verified,
        }

    async def wait(self, target: Target, rid: str) -> SavedExport | None:
        """The export if the platform pushes it within the grace period, else None."""
        delivered = self.receiver.expect(target, rid)
        try:
            pushed = await wait_for_push(delivered, self.options.push_grace, self.window.stopping)
        finally:
            self.receiver.forget(target.id)
        if pushed is None and self.window.stopping.is_set():
            raise Stopped
        return pushed

    async def _close(self, *exc_info: object) -> None:
        # Runs before the receiver's own exit: deliveries still being
        # received finish, and a re-fetch one of them starts is waited for.
        await self.receiver.close()
        if exc_info[0] is None:
            await self.window.drain()
        await self.window.cancel_all()  # only after a failure: none are left otherwise

    async def _on_conflict(self, conflict: PushConflict) -> None:
        target = conflict.target
        try:
            await self._journal.record(
                "push-conflict",
                target.id,
                rid=conflict.request_id,
                first=conflict.first,
                second=conflict.second,
            )
        except OSError as exc:
            await self._on_error(target, exc, str)  # the run stops: DIR cannot be written
            raise
        log.warning(
            "push: two different exports were delivered for %s %s (sha256 %s, then %s); "
            "the platform's own copy is fetched and kept instead",
            target.kind.value,
            target.id,
            conflict.first,
            conflict.second,
        )
        if self.window.stopping.is_set():
            return  # the target is open in the journal: the next run polls for it
        self.window.track(self._refetch(conflict))  # no --max-pending slot is taken for it

    async def _refetch(self, conflict: PushConflict) -> None:
        target = conflict.target
        try:
            sha256 = await self._keep_platform_copy(target, conflict.request_id)
        except Stopped:
            return  # open in the journal: the next run polls for it
        except Exception as exc:
            await self._on_error(target, exc, _after_conflict)
            return
        self.receiver.settle(target.id, sha256)
        self.window.alive()
        matches = {conflict.first: "the first", conflict.second: "the second"}
        log.warning(
            "push: kept the export of %s %s fetched from the platform (sha256 %s): "
            "it matches %s delivery",
            target.kind.value,
            target.id,
            sha256,
            matches.get(sha256, "neither"),
        )

    async def _keep_platform_copy(self, target: Target, rid: str) -> str:
        """Fetch ``rid``'s export from the platform and record it as done; its sha256."""
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def consume(head: bytes, rest: AsyncIterator[bytes]) -> tuple[SavedExport, str]:
            try:
                return await save_digesting(self.sink, target, head, rest)
            except OSError as exc:
                raise cannot_write(self.options.out_dir, exc) from exc

        async def fetch() -> tuple[SavedExport, str] | None:
            try:
                return await self._client.fetch_export(rid, consume)
            except PlaceholderError:
                return None  # a forgery came before the file was ready
            except MalformedExportError as exc:
                raise TransientError(
                    f"the platform answered with something that is not an export ({exc})"
                ) from exc

        checks = 0
        while (fetched := await self._client.call(fetch)) is None:
            if loop.time() - started >= self.options.timeout:
                raise TargetError(f"no export within --timeout {self.options.timeout:g}s")
            checks += 1
            await self.window.pause(self.model.delay(checks, loop.time() - started))
        saved, sha256 = fetched
        self._journal.note_saved(target.id, rid, saved)
        return sha256


def origin_verifier(options: RunOptions) -> OriginVerifier:
    """How this run checks where deliveries come from (docs/push-mode.md, "Proof of origin")."""
    keys: KeySource
    if options.push_dkim_records is not None:
        keys = StaticKeys(options.push_dkim_records)  # --simulate: its own key, no DNS
    elif options.push_dns_server is not None:
        keys = DnsKeys(parse_dns_server(options.push_dns_server))
    else:
        keys = DnsKeys()
    account = account_header(options.account_id) if options.account_id is not None else None
    return OriginVerifier(keys, account=account, require_signature=options.push_require_signature)


def _after_conflict(exc: ExportError) -> str:
    """How a re-fetch after a conflict that failed for good is recorded."""
    if isinstance(exc, RequestGoneError):
        return (
            "two different exports were pushed and the platform no longer has the "
            "request to settle it; rerun to export it again"
        )
    return f"two different exports were pushed, then: {exc}"
