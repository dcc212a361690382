"""The helpers every adapter shares: endpoint names without secrets, bounded JSON answers."""

from __future__ import annotations

import pytest

from adapters.base import display_url, endpoint_names, parse_json_answer


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("https://eth.example/v2/SECRETKEY", "https://eth.example/…"),
        ("https://user:password@node.example:8443/?apikey=SECRET", "https://node.example:8443/…"),
        ("http://[::1]:20200/", "http://[::1]:20200"),
        ("https://node.example:99999", "<unparsable endpoint URL>"),
    ],
)
def test_display_url_never_shows_credentials(url: str, shown: str) -> None:
    assert display_url(url) == shown
    for secret in ("SECRET", "password", "user"):
        assert secret not in display_url(url)


def test_endpoint_names_are_unique() -> None:
    urls = ["https://a.example/v2/K1", "https://a.example/v2/K2", "http://b:1"]
    assert endpoint_names(urls) == ("https://a.example/…", "https://a.example/…#2", "http://b:1")


def test_a_nesting_bomb_is_refused_before_parsing() -> None:
    """json.loads would recurse 100,000 levels on the C stack (web3 raises the limit): a crash."""
    with pytest.raises(ValueError, match="answer"):
        parse_json_answer(b"[" * 100_000 + b"]" * 100_000, what="answer")


def test_an_ordinary_answer_parses() -> None:
    assert parse_json_answer(b'{"jsonrpc":"2.0","id":1,"result":["0x1"]}', what="a") == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": ["0x1"],
    }
