"""Tracked-link tokens: what is signed comes back, anything altered, expired or off the allow-list is refused
with the problem named, and no token is made for a host off the allow-list."""

from __future__ import annotations

import pytest

from mo.channels import links
from mo.config import get_settings


def test_round_trip_and_the_url_points_at_the_redirect(settings) -> None:
    url = links.tracked_url("m-1", "https://m.example-insurer.cn/p?a=1&b=2", settings)
    assert url.startswith(f"{settings.channel_link_base_url}/v1/t/")
    assert links.read_token(url.rsplit("/", 1)[1], settings) == ("m-1", "https://m.example-insurer.cn/p?a=1&b=2")


@pytest.mark.parametrize("target", ["https://evil.example/x", "javascript:alert(1)", "ftp://www.example-insurer.cn/"])
def test_no_token_for_a_target_off_the_allow_list(settings, target) -> None:
    with pytest.raises(links.LinkError) as refused:
        links.make_token("m-1", target, settings)
    assert refused.value.problem in ("host_not_allowed", "bad_url")


def test_altered_expired_and_foreign_tokens_are_refused(settings, monkeypatch) -> None:
    token = links.make_token("m-1", "https://www.example-insurer.cn/x", settings, now=1_000_000)
    body, signature = token.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    with pytest.raises(links.LinkError, match="signature") as tampered:
        links.read_token(f"{body}.{flipped}", settings)
    assert tampered.value.problem == "tampered"
    with pytest.raises(links.LinkError) as expired:
        links.read_token(token, settings, now=1_000_000 + settings.channel_link_ttl_days * 86400 + 1)
    assert expired.value.problem == "expired"
    assert links.read_token(token, settings, now=1_000_001)[0] == "m-1"
    monkeypatch.setenv("MO_CHANNEL_LINK_SECRET", "another-deployment")
    with pytest.raises(links.LinkError) as foreign:
        links.read_token(token, get_settings(), now=1_000_001)
    assert foreign.value.problem == "tampered"
    for bad in ("", "a.b.c", "x" * 3000):
        with pytest.raises(links.LinkError) as malformed:
            links.read_token(bad, settings)
        assert malformed.value.problem == "malformed"
