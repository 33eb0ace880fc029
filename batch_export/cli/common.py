"""What the commands share: option bundles, the token, URL checks, and how a command fails.

A user's mistake becomes a ``CommandFailure``: one line on stderr in the
chosen log format and exit 2 (or the error's own exit code), never a
traceback. A bug becomes "internal error: … — please report it" and exit 70,
with the traceback only at ``-v``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
import cloup
from click.core import ParameterSource

from ..errors import ConfigError, InternalError
from ..platform.settings import DEFAULT_API_URL, DEFAULT_AUTH_URL
from ..redaction import Redactor, Secret
from .console import Console

__all__ = [
    "API_URL_ENV",
    "API_VERSION_ENV",
    "AUTH_URL_ENV",
    "CONTEXT",
    "EXIT_USAGE",
    "INSTANT_RETRIES_ENV",
    "LOG_OPTIONS",
    "PLATFORM_OPTIONS",
    "RATE_OPTION",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "CommandFailure",
    "InternalFailure",
    "api_options",
    "apply",
    "auth_url_named",
    "check_url",
    "failure",
    "internal_failure",
    "output_options",
    "read_token",
]

F = TypeVar("F", bound=Callable[..., Any])
TOKEN_ENV = "COPERNICA_ACCESS_TOKEN"  # noqa: S105 - the variable's name, not a token
# Every platform option has a variable too, so a shell or a unit file states
# the platform once instead of on every command (run and ids share them).
API_URL_ENV = "COPERNICA_API_URL"
API_VERSION_ENV = "COPERNICA_API_VERSION"
AUTH_URL_ENV = "COPERNICA_AUTH_URL"
TOKEN_FILE_ENV = "COPERNICA_TOKEN_FILE"  # noqa: S105 - the variable's name, not a token
#: documented switch for test suites: retries without waiting
INSTANT_RETRIES_ENV = "BATCH_EXPORT_INSTANT_RETRIES"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
EXIT_USAGE = 2


class CommandFailure(click.ClickException):
    """A command that cannot do what it was asked: one line on stderr, exit 2."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, console: Console) -> None:
        super().__init__(message)
        self.console = console

    def show(self, file: Any = None) -> None:
        self.console.say(logging.ERROR, self.format_message())


class InternalFailure(CommandFailure):
    """A bug in batch-export: exit 70."""

    exit_code = InternalError.exit_code


def failure(
    message: str, redactor: Redactor, console: Console, exit_code: int = EXIT_USAGE
) -> CommandFailure:
    """The failure to raise for ``message`` (scrubbed of secrets), by exit code."""
    kind = InternalFailure if exit_code == InternalError.exit_code else CommandFailure
    return kind(redactor(message), console)


def internal_failure(exc: BaseException, redactor: Redactor, console: Console) -> CommandFailure:
    """A bug escaped: one line to report (the traceback only with -v), exit 70."""
    Console.traceback(exc, redactor)
    return failure(
        f"internal error: {type(exc).__name__}: {exc} — please report it "
        "(rerun with -v for the traceback)",
        redactor,
        console,
        InternalError.exit_code,
    )


#: an option decorator (click's or cloup's), as option bundles and cloup's groups take them
Decorator = Callable[[Any], Any]

#: -v/-q/--log-format, shared by the commands that log
LOG_OPTIONS: tuple[Decorator, ...] = (
    cloup.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug)."),
    cloup.option("-q", "--quiet", is_flag=True, help="Only errors on stderr."),
    cloup.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="json: one JSON object per log line, for schedulers and log shippers.",
    ),
)

#: where the platform is and how to authenticate, shared by run and ids
PLATFORM_OPTIONS: tuple[Decorator, ...] = (
    cloup.option(
        "--api-url",
        default=DEFAULT_API_URL,
        show_default=True,
        envvar=API_URL_ENV,
        show_envvar=True,
        help="Base URL of the REST API.",
    ),
    cloup.option(
        "--api-version",
        type=int,
        default=2,
        show_default=True,
        envvar=API_VERSION_ENV,
        show_envvar=True,
        help="REST API version (4 uses bearer JWTs).",
    ),
    cloup.option(
        "--auth-url",
        default=DEFAULT_AUTH_URL,
        show_default=True,
        envvar=AUTH_URL_ENV,
        show_envvar=True,
        help="Where v4 exchanges the token for a JWT (name it when --api-url is not the "
        "platform's).",
    ),
    cloup.option(
        "--token-file",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar=TOKEN_FILE_ENV,
        show_envvar=True,
        help=f"File holding the access token (else ${TOKEN_ENV}).",
    ),
)

RATE_OPTION: Decorator = cloup.option(
    "--rate",
    type=float,
    help="Requests/second ceiling for this client (default: find the account's limit).",
)


def apply(func: F, options: tuple[Decorator, ...]) -> F:
    """``func`` with ``options`` added, listed in --help in the order given."""
    for option in reversed(options):
        func = option(func)
    return func


def output_options(func: F) -> F:
    """-v/-q/--log-format, shared by the commands that log."""
    return apply(func, LOG_OPTIONS)


def api_options(func: F) -> F:
    """The platform options and --rate, shared by run and ids."""
    return apply(func, (*PLATFORM_OPTIONS, RATE_OPTION))


def auth_url_named(ctx: click.Context) -> bool:
    """Whether --auth-url was given (command line, environment, default map), not defaulted.

    Only a named auth endpoint may receive the token next to a non-platform
    --api-url, even when it is the platform's own: the default is refused
    there, an explicit choice of the same URL is not.
    """
    source = ctx.get_parameter_source("auth_url")
    return source is not None and source is not ParameterSource.DEFAULT


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, option: str, console: Console) -> str:
    """An http(s) URL with a host, or a BadParameter saying what is expected."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{url!r} is not an http(s) URL with a host, e.g. https://api.copernica.com",
            param_hint=option,
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        console.say(
            logging.WARNING,
            f"{option} uses plain http to {parts.hostname}: the access token travels unencrypted",
        )
    return url


def read_token(token_file: Path | None) -> Secret:
    """The access token from --token-file or the environment, never from the command line."""
    if token_file is not None:
        try:
            value = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read --token-file {token_file}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"--token-file {token_file} is empty")
        return Secret(value)
    value = os.environ.get(TOKEN_ENV, "").strip()
    if not value:
        raise ConfigError(
            f"no access token: set {TOKEN_ENV} or pass --token-file PATH (or try --simulate)"
        )
    return Secret(value)
