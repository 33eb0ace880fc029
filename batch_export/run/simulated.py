"""A run against the embedded simulator: what ``run --simulate`` and ``export(simulate=True)`` share.

The simulator plays the demo's platform (``simulator/demo.py``: the mixed
wire, an unknown 50 req/s limit, short outages) on a free loopback port for
the length of one run; the run's platform settings are pointed at it.
The limit the run learns is the simulator's, not an account's: it is
remembered in a throwaway cache directory (removed when the run ends), never
in the user's (``platform/known_limit.py``), unless the caller named one.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..redaction import Secret
from .options import RunOptions, RunResult
from .orchestrate import run_export

__all__ = ["run_simulated"]

log = logging.getLogger(__name__)


def _log_info(message: str) -> None:
    log.info("%s", message)


async def run_simulated(
    options: RunOptions, *, announce: Callable[[str], None] = _log_info
) -> RunResult:
    """``run_export(options)`` against a simulator started for it (the platform settings replaced).

    ``announce`` is told where the simulator listens (the CLI says it on
    stderr; the default logs it at INFO). The simulator's token is added to
    ``options.redactor`` when there is one, like any token. Unless
    ``options.cache_dir`` names one, the limit cache is a temporary directory.
    """
    # ignore_cleanup_errors: a late limit save must not turn a finished run into an error.
    with tempfile.TemporaryDirectory(
        prefix="batch-export-sim-cache-", ignore_cleanup_errors=True
    ) as throwaway:
        if options.cache_dir is None:
            options = replace(options, cache_dir=Path(throwaway))
        return await _against_simulator(options, announce)


async def _against_simulator(options: RunOptions, announce: Callable[[str], None]) -> RunResult:
    """``run_export(options)`` with the platform settings pointed at a simulator started for it."""
    # Imported here: the simulator (aiohttp.web and its app) is only loaded by a run that uses it.
    from ..simulator import Simulator
    from ..simulator.demo import demo_config

    async with Simulator(demo_config(), host="127.0.0.1", port=0) as sim:
        announce(f"using the embedded simulator at {sim.base_url}")
        if options.redactor is not None:
            options.redactor.add(sim.token)
        api = replace(
            options.api, api_url=sim.base_url, auth_url=sim.auth_url, token=Secret(sim.token)
        )
        # The simulator's signing key is published nowhere: trust it as given, not via DNS.
        return await run_export(replace(options, api=api, push_dkim_records=sim.dkim_records()))
