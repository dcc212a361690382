"""The devnode calls a contract only for a `to` of exactly 40 hex digits (0x optional)."""

from __future__ import annotations

import pytest

from devnet.fisco.chain import _parse_address


@pytest.mark.parametrize("text", ["0x" + "ab" * 20, "AB" * 20, "0X" + "0a" * 20])
def test_forty_hex_digits_name_an_address(text: str) -> None:
    assert _parse_address(text) == bytes.fromhex(text[-40:])


@pytest.mark.parametrize(
    "text",
    [
        "0x" + "ab" * 19 + "  ",  # bytes.fromhex would skip the spaces: a 19-byte address
        "0x" + "ab" * 19 + " a",
        "0x" + "ab" * 19,
        "0x" + "ab" * 21,
        "0x" + "gg" * 20,
        "",
    ],
)
def test_anything_else_names_no_contract(text: str) -> None:
    assert _parse_address(text) is None
