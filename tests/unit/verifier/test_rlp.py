"""Strict RLP: known encodings, agreement with pyrlp, and rejection of every non-canonical form."""

from __future__ import annotations

from typing import Any

import pytest
import rlp as pyrlp
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.errors import MalformedEvidence
from verifier.rlp import (
    MAX_DEPTH,
    Decoded,
    RlpError,
    decode,
    decode_uint,
    encode,
    encode_list_of_encoded,
    encode_uint,
    list_items,
    list_payload,
)

_items: st.SearchStrategy[Any] = st.recursive(
    st.binary(max_size=80),
    lambda children: st.lists(children, max_size=6),
    max_leaves=25,
)


def _as_lists(item: Any) -> Any:
    return [_as_lists(x) for x in item] if isinstance(item, list | tuple) else bytes(item)


@pytest.mark.parametrize(
    ("item", "hex_encoding"),
    [
        (b"", "80"),
        (b"\x00", "00"),
        (b"\x7f", "7f"),
        (b"\x80", "8180"),
        (b"dog", "83646f67"),
        ([], "c0"),
        ([b"cat", b"dog"], "c88363617483646f67"),
        ([[], [[]], [[], [[]]]], "c7c0c1c0c3c0c1c0"),
        (b"a" * 55, "b7" + "61" * 55),
        (b"a" * 56, "b838" + "61" * 56),
        (b"a" * 1024, "b90400" + "61" * 1024),
        ([b"a" * 60], "f83eb83c" + "61" * 60),
    ],
)
def test_known_encodings(item: Any, hex_encoding: str) -> None:
    """Encodings from the Ethereum wiki's RLP examples and the length-form boundaries."""
    assert encode(item).hex() == hex_encoding
    assert decode(bytes.fromhex(hex_encoding)) == item


@pytest.mark.parametrize(
    ("value", "raw"), [(0, b""), (1, b"\x01"), (127, b"\x7f"), (255, b"\xff"), (256, b"\x01\x00")]
)
def test_encode_uint_is_minimal_big_endian(value: int, raw: bytes) -> None:
    """Integers become minimal big-endian bytes, 0 the empty string."""
    assert encode_uint(value) == raw


@pytest.mark.parametrize("value", [-1, True, 1.5, "1"])
def test_encode_uint_rejects_non_integers(value: Any) -> None:
    """Negative numbers, bools, floats and strings are not RLP integers."""
    with pytest.raises(MalformedEvidence):
        encode_uint(value)


def test_encode_rejects_other_types() -> None:
    """An int passed to encode() directly is a programming error, not silently converted."""
    with pytest.raises(TypeError):
        encode(5)  # type: ignore[arg-type]


def test_decode_uint_is_strict() -> None:
    """Stored integers must not have a leading zero byte or exceed the width."""
    assert decode_uint(b"\x01\x00", field="x", check="c") == 256
    assert decode_uint(b"", field="x", check="c") == 0
    with pytest.raises(MalformedEvidence):
        decode_uint(b"\x00\x01", field="x", check="c")
    with pytest.raises(MalformedEvidence):
        decode_uint(b"\x01" * 9, field="x", check="c", max_bytes=8)


@settings(max_examples=200, deadline=None)
@given(item=_items)
def test_encode_agrees_with_pyrlp_and_round_trips(item: Any) -> None:
    """encode() equals pyrlp's encoding, and decode() gives the item back."""
    encoded = encode(item)
    assert encoded == pyrlp.encode(item)
    assert decode(encoded) == _as_lists(item)


@settings(max_examples=300, deadline=None)
@given(item=_items, position=st.integers(0, 10_000), xor=st.integers(1, 255))
def test_decode_accepts_only_canonical_bytes(item: Any, position: int, xor: int) -> None:
    """After any byte flip, decode() either raises RlpError or re-encodes to the same bytes."""
    data = bytearray(encode(item))
    data[position % len(data)] ^= xor
    try:
        value: Decoded = decode(bytes(data))
    except RlpError:
        with pytest.raises(pyrlp.exceptions.DecodingError):
            pyrlp.decode(bytes(data), strict=True)
        return
    assert encode(value) == bytes(data)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64))
def test_decode_of_random_bytes_is_canonical_or_rejected(data: bytes) -> None:
    """Random input never escapes as anything but RlpError, and what decodes is canonical."""
    try:
        value = decode(data)
    except RlpError:
        return
    assert encode(value) == data


@pytest.mark.parametrize(
    ("hex_data", "reason"),
    [
        ("", "empty input"),
        ("8100", "single byte below 0x80 written as a string"),
        ("817f", "single byte below 0x80 written as a string"),
        ("b80568656c6c6f", "long form for a 5-byte string"),
        ("b9003861", "length with a leading zero"),
        ("f80180", "long list form for a 1-byte payload"),
        ("8080", "trailing bytes"),
        ("c0c0", "trailing bytes after a list"),
        ("83646f", "truncated string"),
        ("b901", "truncated length field"),
        ("c383646f", "truncated list payload"),
        ("c28363", "item overruns its list"),
        ("c28100", "non-canonical item inside a list"),
        ("c4b8020000", "long form inside a list"),
    ],
)
def test_decode_rejects_non_canonical(hex_data: str, reason: str) -> None:
    """Each non-canonical or truncated encoding raises RlpError."""
    with pytest.raises(RlpError):
        decode(bytes.fromhex(hex_data))


def test_decode_bounds_nesting_depth() -> None:
    """Lists nested deeper than MAX_DEPTH raise RlpError instead of exhausting the stack."""
    item: Any = []
    for _ in range(MAX_DEPTH):
        item = [item]
    with pytest.raises(RlpError):
        decode(encode(item))
    assert decode(encode(item[0])) == item[0]


def test_decode_error_names_the_requested_check() -> None:
    """The check name given to decode() is the one the error carries."""
    with pytest.raises(RlpError) as info:
        decode(b"\x81\x00", check="receipt_encoding")
    assert info.value.check == "receipt_encoding"
    assert info.value.offset == 0


def test_decode_rejects_non_bytes() -> None:
    """A str is not RLP input."""
    with pytest.raises(RlpError):
        decode("c0")  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(children=st.lists(_items, max_size=17))
def test_scanner_finds_the_same_items_as_decode(children: list[Any]) -> None:
    """list_payload/list_items report the bounds of exactly the items decode() builds."""
    data = encode(children)
    start, end = list_payload(data)
    bounds = list_items(data, start, end)
    assert len(bounds) == len(children)
    for (s, e, is_list), child in zip(bounds, children, strict=True):
        assert is_list == isinstance(child, list)
        if not is_list:
            assert data[s:e] == child
        else:
            assert decode(data[e - len(encode(child)) : e]) == _as_lists(child)


def test_list_payload_needs_exactly_one_list() -> None:
    """A string, or a list followed by more bytes, is not a node."""
    with pytest.raises(RlpError):
        list_payload(b"\x83dog")
    with pytest.raises(RlpError):
        list_payload(b"\xc0\x80")


def test_encode_list_of_encoded_embeds_raw_items() -> None:
    """A list of pre-encoded items encodes like the list of the items themselves."""
    parts = [encode(b"cat"), encode([b"dog"])]
    assert encode_list_of_encoded(parts) == encode([b"cat", [b"dog"]])


# --- from the mutation run (docs/mutation.md) ----------------------------------------------


def test_errors_name_the_offset_and_the_check() -> None:
    """An RlpError carries its detail, the byte offset and check "rlp" unless told otherwise."""
    with pytest.raises(RlpError) as info:
        decode(b"\xc2\x81\x00")
    assert (info.value.detail, info.value.offset, info.value.check) == (
        "single byte below 0x80 encoded as a string",
        1,
        "rlp",
    )
    assert str(info.value) == "invalid RLP at byte 1: single byte below 0x80 encoded as a string"
    for truncated in (b"\xb8", b"\xb8\x38"):
        with pytest.raises(RlpError) as info:
            decode(truncated, check="header")
        assert (info.value.offset, info.value.check) == (0, "header")
    assert str(RlpError("no offset")) == "invalid RLP: no offset"


def test_decode_uint_length_bound_is_inclusive() -> None:
    """max_bytes bytes are accepted, one more is refused."""
    assert decode_uint(b"\xff" * 32, field="f", check="c") == (1 << 256) - 1
    with pytest.raises(MalformedEvidence) as info:
        decode_uint(b"\x01" * 33, field="f", check="c")
    assert info.value.field == "f"
    assert decode_uint(b"\x01\x02", field="f", check="c", max_bytes=2) == 0x0102
    with pytest.raises(MalformedEvidence):
        decode_uint(b"\x01\x02", field="f", check="c", max_bytes=1)


def test_scanner_errors_default_to_check_rlp() -> None:
    """Errors of the list scanner, raised outside decode(), carry the default check "rlp"."""
    with pytest.raises(RlpError) as info:
        list_payload(b"\x80")
    assert (info.value.check, info.value.offset) == ("rlp", 0)
