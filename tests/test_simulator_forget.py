"""The simulator's forgetting platform (``forget_rate``, and the mixed wire's ``forget`` rate)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from batch_export.simulator.config import MIXED_GROUPS, SimulatorConfig

from .conftest import SimThread, StartSimulator

#: the mixed wire with only its forgetting on, so every other answer is the classic one
_ONLY_FORGET = {"wire": "mixed", "mixed_exclude": frozenset(MIXED_GROUPS) - {"forget"}}


def _call(sim: SimThread, method: str, path: str) -> tuple[int, bytes, str]:
    """One API call with the token: (status, body, X-Created)."""
    url = f"{sim.base_url}/v2/{path}?access_token={sim.token}"
    request = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read(), resp.headers.get("X-Created", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), ""


@pytest.mark.parametrize(
    "config",
    [{"forget_rate": 1.0}, {**_ONLY_FORGET, "mixed_rates": {"forget": 1.0}}],
)
def test_a_forgotten_request_answers_like_an_unknown_id(
    simulator: StartSimulator, config: dict[str, object]
) -> None:
    """Lost before ready: GET is 404, status "not available", counted; never served."""
    sim = simulator(prepare_delay="0.2", **config)
    status, _, rid = _call(sim, "POST", "profile/7/datarequest")
    assert status in (200, 201) and rid
    deadline_checks = 0
    while True:  # forgotten at a random moment within the 0.2 s of preparation
        status, body, _ = _call(sim, "GET", f"datarequest/{rid}")
        if status == 404:
            break
        assert json.loads(body)["data"] == "Data not available (yet)"  # never the export
        deadline_checks += 1
        assert deadline_checks < 10_000
    assert _call(sim, "GET", f"datarequest/{rid}/status")[1] == b'{"status": "not available"}'
    stats = sim.stats()
    assert stats["forgotten"] == 1
    assert stats["forgotten_seen"] >= 2
    assert stats["exports_served"] == 0 and stats["expired_seen"] == 0


def test_no_forget_rate_forgets_nothing(simulator: StartSimulator) -> None:
    """The default platform (classic or mixed) loses no request."""
    for wire in ({"wire": "classic"}, _ONLY_FORGET):
        sim = simulator(prepare_delay="0", **wire)
        rids = [_call(sim, "POST", f"profile/{i}/datarequest")[2] for i in range(1, 41)]
        assert all(_call(sim, "GET", f"datarequest/{rid}")[0] == 200 for rid in rids)
        assert sim.stats()["forgotten"] == 0


def test_forget_rate_is_a_probability() -> None:
    """forget_rate outside 0..1 is refused at construction."""
    with pytest.raises(ValueError, match="forget_rate"):
        SimulatorConfig(forget_rate=1.5)
