"""Strict JSON field parsers and the depth-bounded JSON loader."""

from __future__ import annotations

import sys

import pytest

from verifier.encoding import load_json, parse_hex, parse_quantity
from verifier.errors import MalformedEvidence


def test_load_json_counts_depth_outside_strings() -> None:
    """Brackets inside strings (and escaped quotes) do not count towards the nesting depth."""
    doc = b'{"a": "' + b"[" * 80 + b'\\"", "b": [1]}'
    assert load_json(doc, max_depth=2) == {"a": "[" * 80 + '"', "b": [1]}
    with pytest.raises(MalformedEvidence, match="nested more than 1"):
        load_json(doc, max_depth=1)


def test_load_json_rejects_deep_nesting_even_with_a_raised_recursion_limit() -> None:
    """Nesting past the bound is a typed error even when a library raised the recursion limit."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        with pytest.raises(MalformedEvidence, match="nested more than 64"):
            load_json(b"[" * 200_000 + b"]" * 200_000)
    finally:
        sys.setrecursionlimit(old)
    nested: list[object] = []
    for _ in range(63):
        nested = [nested]
    assert load_json(b"[" * 64 + b"]" * 64) == nested


@pytest.mark.parametrize(("raw", "reason"), [(b"{", "not JSON"), (b"\xff", "not UTF-8")])
def test_load_json_bad_text(raw: bytes, reason: str) -> None:
    """Bad JSON and non-UTF-8 text are MalformedEvidence naming the document."""
    with pytest.raises(MalformedEvidence, match=reason) as info:
        load_json(raw, what="bundle.json")
    assert info.value.field == "bundle.json"


@pytest.mark.parametrize("value", ["0x0", "0x1a", "0xFF"])
def test_quantities(value: str) -> None:
    """Canonical hex quantities parse."""
    assert parse_quantity(value, "q") == int(value, 16)


@pytest.mark.parametrize("value", ["0x", "0x01", "1a", 26, "0x-1", " 0x1"])
def test_bad_quantities(value: object) -> None:
    """Empty, zero-padded, unprefixed, non-string and signed quantities are rejected."""
    with pytest.raises(MalformedEvidence):
        parse_quantity(value, "q")


def test_parse_hex_prefix_and_length_rules() -> None:
    """Prefix policy and exact byte length are enforced with the field named."""
    assert parse_hex("ab", "f", prefix="optional") == b"\xab"
    with pytest.raises(MalformedEvidence, match="f: hex must start with 0x"):
        parse_hex("ab", "f")
    with pytest.raises(MalformedEvidence, match="must not start with 0x"):
        parse_hex("0xab", "f", prefix="forbidden")
    with pytest.raises(MalformedEvidence, match="expected 2 bytes, got 1"):
        parse_hex("0xab", "f", length=2)
    with pytest.raises(MalformedEvidence, match="even-length"):
        parse_hex("0xabc", "f")


def test_load_json_does_not_guess_utf16() -> None:
    """UTF-16 text cannot slip nesting past the depth count: only UTF-8 is read."""
    n = 100_000
    raw = ('["\u2200", ' + "[" * n + "]" * n + ', "x"]').encode("utf-16-le")
    with pytest.raises(MalformedEvidence):
        load_json(raw)


def test_load_json_huge_integer_is_typed() -> None:
    """An integer beyond Python's digit limit is MalformedEvidence, not a ValueError."""
    with pytest.raises(MalformedEvidence, match="not acceptable JSON"):
        load_json(b'{"a": ' + b"1" * 5000 + b"}")


def test_load_json_unterminated_string_scan_is_linear() -> None:
    """Escaped quotes with no closing quote are rejected (one linear pass, no rescans)."""
    with pytest.raises(MalformedEvidence, match="not JSON"):
        load_json(b'"' + b'\\"' * 300_000)
    with pytest.raises(MalformedEvidence, match="pairs of quotes") as info:
        load_json(b'"' + b'\\"' * 2_000_000)
    assert info.value.check == "limit"
