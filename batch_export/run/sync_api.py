"""``export(…)``: one run for callers without an event loop (a script, a worker thread).

It builds the ``ApiSettings`` and ``RunOptions`` from keyword arguments
(checked before anything happens: an unknown name or a value of the wrong
type is a ``ConfigError`` that says which), then runs ``run_export`` (or,
with ``simulate=True``, ``run_simulated``) under ``asyncio.run``.

Signals: Python installs signal handlers in the main thread only. There,
``handle_signals`` is on unless the caller turns it off, so Ctrl-C (or
SIGTERM) stops the run as it stops ``batch-export run``: requests in flight
may finish, the journal, manifest and summary are written, and ``export``
returns the ``RunResult`` with ``interrupted="SIGINT"`` and exit code 130;
rerunning resumes. With ``handle_signals=False`` Ctrl-C cancels the run
instead (the evidence is still written) and ``KeyboardInterrupt`` is raised.
In any other thread no handler is installed (asking for one there is a
``ConfigError``); the process's signals are the main thread's business.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import os
import threading
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..input.ids import TargetKind
from ..platform.settings import DEFAULT_API_URL, DEFAULT_AUTH_URL, ApiSettings
from ..redaction import Secret
from .options import RunOptions, RunResult
from .orchestrate import run_export
from .simulated import run_simulated
from .tally import ProgressSnapshot

__all__ = ["export"]

#: RunOptions fields ``export`` sets from its own arguments
_OWN = frozenset({"input", "out_dir", "api", "kind", "on_progress", "progress_interval"})
_OWN_API = frozenset({"api_url", "api_version", "auth_url", "token"})
#: the plain types a keyword's value is checked against (the dataclasses check ranges)
_PLAIN: Mapping[object, tuple[type, ...]] = {
    int: (int,),
    float: (int, float),
    bool: (bool,),
    str: (str,),
}


def export(
    input: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    token: str | Secret | None = None,
    api_url: str = DEFAULT_API_URL,
    api_version: int = 2,
    auth_url: str = DEFAULT_AUTH_URL,
    kind: TargetKind | str = TargetKind.PROFILE,
    simulate: bool = False,
    on_progress: Callable[[ProgressSnapshot], None] | None = None,
    progress_interval: float = 1.0,
    handle_signals: bool | None = None,
    **options: Any,
) -> RunResult:
    """Export the data request of every target in ``input`` into ``out_dir``; block until done.

    ``token`` is the Copernica access token (not needed with ``simulate=True``,
    which runs against the embedded simulator exactly like ``run --simulate``).
    ``on_progress`` is called with a ``ProgressSnapshot`` every
    ``progress_interval`` seconds and once at the end; it runs on the event
    loop, so it must be quick, and one that raises is logged and skipped.
    ``handle_signals``: None (the default) handles SIGINT/SIGTERM in the main
    thread and nowhere else (see the module docstring). Any other keyword is
    a field of ``RunOptions`` (``rate=20``, ``gzip=True``) or of
    ``ApiSettings`` (``insecure=True``, ``outage_timeout=300``).

    Returns the ``RunResult``; raises what ``run_export`` raises
    (``ConfigError``, ``AuthError``, ``StorageError``, ``OutageError``,
    ``InternalError``), and ``ConfigError`` for a bad argument or when called
    from a running event loop (there, ``await run_export(…)``).
    """
    _check_no_running_loop()
    signals = _signals(handle_signals)
    secret = token if isinstance(token, Secret) else Secret((token or "").strip())
    if simulate:
        if token is not None or api_url != DEFAULT_API_URL:
            raise ConfigError(
                "simulate=True runs against the embedded simulator: leave out token and api_url"
            )
    elif not secret.reveal():
        raise ConfigError(
            "export() needs token=... (the Copernica access token), or simulate=True to try it"
        )
    api_fields, run_fields = _split(options)
    run_options = RunOptions(
        input=os.fspath(input),
        out_dir=Path(out_dir),
        api=ApiSettings(
            api_url=api_url,
            api_version=api_version,
            auth_url=auth_url,
            token=secret,
            **api_fields,
        ),
        kind=_kind(kind),
        on_progress=on_progress,
        progress_interval=progress_interval,
        handle_signals=signals,
        **run_fields,
    )
    if simulate:
        return asyncio.run(run_simulated(run_options))
    return asyncio.run(run_export(run_options))


def _check_no_running_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise ConfigError(
        "export() blocks, so it cannot run inside a running event loop: "
        "there, await run_export(RunOptions(...)) instead"
    )


def _signals(handle_signals: bool | None) -> bool:
    """Whether the run handles SIGINT/SIGTERM: only the main thread can."""
    main = threading.current_thread() is threading.main_thread()
    if handle_signals is None:
        return main
    if handle_signals and not main:
        raise ConfigError(
            "handle_signals=True needs the main thread (Python installs signal handlers only "
            "there); leave it out when calling export() from another thread"
        )
    return handle_signals


def _kind(kind: TargetKind | str) -> TargetKind:
    try:
        return TargetKind(kind)
    except ValueError:
        known = ", ".join(repr(k.value) for k in TargetKind)
        raise ConfigError(f"kind={kind!r} is not one of {known}") from None


def _split(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The extra keywords as ApiSettings fields and RunOptions fields, each checked."""
    api_hints = _hints(ApiSettings, _OWN_API)
    run_hints = _hints(RunOptions, _OWN)
    api_fields: dict[str, Any] = {}
    run_fields: dict[str, Any] = {}
    for name, value in options.items():
        if name in api_hints:
            api_fields[name] = _checked(name, value, api_hints[name])
        elif name in run_hints:
            run_fields[name] = _checked(name, value, run_hints[name])
        else:
            raise ConfigError(_unknown(name, [*api_hints, *run_hints]))
    return api_fields, run_fields


def _hints(cls: type, own: frozenset[str]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in own}


def _unknown(name: str, known: list[str]) -> str:
    if name in _OWN | _OWN_API:
        return f"export() sets {name} from its own arguments; pass those instead"
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return (
        f"export() has no option {name!r}{hint}; the options are the fields of "
        "RunOptions and ApiSettings"
    )


def _checked(name: str, value: Any, hint: Any) -> Any:
    """``value`` if it fits a plain ``hint`` (a path given as a string becomes a Path)."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    choices = typing.get_args(hint) if union else (hint,)
    if value is None and type(None) in choices:
        return value
    if Path in choices and isinstance(value, (str, os.PathLike)):
        return Path(value)
    plain = [choice for choice in choices if choice is not type(None)]
    if not all(choice in _PLAIN for choice in plain):
        return value  # a settings object or a callable: its own checks apply
    # bool is an int to isinstance, but concurrency=True is a mistake
    fits = any(
        isinstance(value, _PLAIN[choice]) and (choice is bool or not isinstance(value, bool))
        for choice in plain
    )
    if not fits:
        wanted = " or ".join(getattr(choice, "__name__", str(choice)) for choice in plain)
        raise ConfigError(f"{name}={value!r} should be {wanted}")
    return value
