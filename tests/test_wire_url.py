"""``WireUrls`` assembles the very URL that parsing the string would give."""

from __future__ import annotations

import pytest
from yarl import URL

from batch_export.platform.wire_url import WireUrls

BASES = [
    "http://127.0.0.1:18787/v2/",
    "https://api.copernica.com/v4/",
    "http://[::1]:8080/v3/",
    "http://proxy.example/prefix/v2/",
    "http://user:p%40ss@h.example:1/v2/",
    "HTTP://Host.Example:80/v1/",
]
RESTS = [
    "profile/12/datarequest",
    "datarequest/dr%2F1?access_token=a%2Bb",
    "email/a%40b.nl/datarequest?report=http%3A%2F%2Fx%2Fy&access_token=z",
    "",
]


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("rest", RESTS)
def test_an_assembled_url_is_the_parsed_one(base: str, rest: str) -> None:
    """Every part aiohttp reads (host, port, raw path and query, the text) is the same."""
    built = WireUrls(base).url(base + rest)
    parsed = URL(base + rest, encoded=True)
    assert built == parsed
    assert str(built) == str(parsed)
    assert (built.scheme, built.host, built.port) == (parsed.scheme, parsed.host, parsed.port)
    assert (built.raw_path, built.raw_query_string) == (parsed.raw_path, parsed.raw_query_string)
    assert built.raw_user == parsed.raw_user and built.raw_password == parsed.raw_password


@pytest.mark.parametrize(
    "url",
    ["http://other.example/v2/datarequest/1", "http://127.0.0.1:18787/v2/x#frag", "/v2/relative"],
)
def test_a_url_outside_the_base_is_parsed(url: str) -> None:
    """A redirect's next hop elsewhere (or anything odd) is parsed as it always was."""
    assert WireUrls("http://127.0.0.1:18787/v2/").url(url) == URL(url, encoded=True)
