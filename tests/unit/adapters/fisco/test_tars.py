"""The TARS codec: exact encodings, round trips, and typed errors with offsets for bad input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.fisco.errors import TarsDecodeError, TarsEncodeError
from adapters.fisco.tars import TarsStruct, TarsType, TarsWriter, decode_struct

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
BOUNDARY_INTS = [
    0, 1, -1, 127, 128, -128, -129, 32767, 32768, -32768, -32769,
    (1 << 31) - 1, 1 << 31, -(1 << 31), -(1 << 31) - 1, INT64_MAX, INT64_MIN,
]  # fmt: skip


def _int_bytes(tag: int, value: int) -> bytes:
    w = TarsWriter()
    w.write_int(tag, value)
    return w.getvalue()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0c"),
        (1, "0001"),
        (-1, "00ff"),
        (127, "007f"),
        (128, "010080"),
        (-129, "01ff7f"),
        (32767, "017fff"),
        (32768, "0200008000"),
        ((1 << 31) - 1, "027fffffff"),
        (1 << 31, "030000000080000000"),
        (INT64_MAX, "037fffffffffffffff"),
        (INT64_MIN, "038000000000000000"),
    ],
)
def test_int_uses_the_smallest_width(value: int, expected: str) -> None:
    """Integers are zero/int8/int16/int32/int64, the smallest that holds the value."""
    assert _int_bytes(0, value).hex() == expected


@pytest.mark.parametrize("value", BOUNDARY_INTS)
def test_int_boundaries_round_trip(value: int) -> None:
    """Every width boundary, positive and negative, decodes to the written value."""
    assert decode_struct(_int_bytes(3, value)).int_field(3) == value


@pytest.mark.parametrize(("tag", "head"), [(0, "0c"), (14, "ec"), (15, "fc0f"), (255, "fcff")])
def test_tags_from_15_use_the_extended_head(tag: int, head: str) -> None:
    """Tags below 15 share the head byte; from 15 on the tag follows as its own byte."""
    assert _int_bytes(tag, 0).hex() == head
    assert decode_struct(bytes.fromhex(head)).int_field(tag, default=None) == 0


@pytest.mark.parametrize(
    ("length", "type_", "prefix"),
    [
        (0, TarsType.STRING1, "1600"),
        (255, TarsType.STRING1, "16ff"),
        (256, TarsType.STRING4, "1700000100"),
    ],
)
def test_string_length_forms(length: int, type_: TarsType, prefix: str) -> None:
    """Strings up to 255 bytes are type 6 with a u8 length, longer ones type 7 with a u32."""
    w = TarsWriter()
    w.write_string(1, "a" * length)
    raw = w.getvalue()
    assert raw.hex().startswith(prefix)
    decoded = decode_struct(raw)
    assert decoded.fields[1].type is type_
    assert decoded.str_field(1) == "a" * length


def test_bytes_are_a_simple_list() -> None:
    """vector<byte> is type 13, an int8 element head, the length as a TARS int, the raw bytes."""
    w = TarsWriter()
    w.write_bytes(2, b"\xab" * 200)
    w.write_bytes(3, b"")
    raw = w.getvalue()
    assert raw[:5].hex() == "2d000100c8"
    assert raw[205:].hex() == "3d000c"
    decoded = decode_struct(raw)
    assert decoded.bytes_field(2) == b"\xab" * 200
    assert decoded.bytes_field(3, default=None) == b""


def test_struct_and_list_nesting() -> None:
    """Nested structs are begin/end framed; list elements are tagged 0."""
    inner = TarsWriter()
    inner.write_int(1, 7)
    inner.write_string(2, "x")
    w = TarsWriter()
    w.write_struct(1, inner.getvalue())
    w.write_list(2, [b"a", b"bc"], TarsWriter.write_bytes)
    raw = w.getvalue()
    assert (
        raw.hex() == "1a1007260178" + "0b" + "29" + "0002" + "0d000001" + "61" + "0d000002" + "6263"
    )
    decoded = decode_struct(raw)
    nested = decoded.struct_field(1, required=True)
    assert nested is not None
    assert (nested.int_field(1), nested.str_field(2)) == (7, "x")
    assert [item.value for item in decoded.list_field(2)] == [b"a", b"bc"]


def test_absent_fields_take_defaults() -> None:
    """Omitted optional fields read as their defaults; required ones raise with an offset."""
    decoded = decode_struct(b"")
    assert decoded.int_field(1) == 0
    assert decoded.str_field(2) == ""
    assert decoded.bytes_field(3) == b""
    assert decoded.struct_field(4) is None
    assert decoded.list_field(5) == ()
    with pytest.raises(TarsDecodeError, match="required tag 6") as info:
        decoded.str_field(6, default=None)
    assert info.value.offset == 0


def test_unknown_tags_are_kept_and_ignored() -> None:
    """Fields a reader does not ask for (float, double, map, ...) are skipped over."""
    float_1, double_2 = "14" + "3f800000", "25" + "4000000000000000"
    map_a_b = "38" + "0001" + "060161" + "160162"
    raw = bytes.fromhex(float_1 + double_2 + map_a_b + "4001")
    decoded = decode_struct(raw)
    assert decoded.fields[1].value == 1.0
    assert decoded.fields[2].value == 2.0
    assert decoded.fields[3].type is TarsType.MAP
    assert decoded.int_field(4) == 1


@pytest.mark.parametrize(
    ("hex_input", "offset", "message"),
    [
        ("01", 1, "truncated"),  # int16 without its payload
        ("1e", 0, "unknown TARS type 14"),
        ("1f", 0, "unknown TARS type 15"),
        ("f0", 1, "truncated"),  # extended tag byte missing
        ("160561", 2, "truncated"),  # string of 5 bytes, 1 present
        ("1700000100", 5, "truncated"),  # string4 of 256 bytes, none present
        ("1d000103e8aabb", 2, "length 1000 exceeds"),
        ("1d0000ff", 2, "length -1 exceeds"),
        ("1d0100", 1, "simple list element type"),
        ("190005", 1, "length 5 exceeds"),
        ("19000110", 3, "element tag 1, expected 0"),
        ("0b", 0, "struct end outside a struct"),
        ("1a0c", 2, "truncated"),  # struct never closed
        ("2c1c", 1, "tag 1 after tag 2"),
        ("1c1c", 1, "tag 1 after tag 1"),
        ("1906", 1, "length must be an integer"),
        ("1900010b", 3, "struct end where a value"),
    ],
)
def test_malformed_input_raises_with_offset(hex_input: str, offset: int, message: str) -> None:
    """Truncation, unknown types, bad lengths and bad framing raise TarsDecodeError at the byte."""
    with pytest.raises(TarsDecodeError, match=message) as info:
        decode_struct(bytes.fromhex(hex_input))
    assert info.value.offset == offset
    assert isinstance(info.value, ValueError)


def test_nesting_depth_is_capped() -> None:
    """Deeply nested structs raise a typed error instead of exhausting the stack."""
    raw = bytes.fromhex("0a" * 40 + "0b" * 40)
    with pytest.raises(TarsDecodeError, match="nesting deeper than 32") as info:
        decode_struct(raw)
    assert info.value.offset == 32
    assert decode_struct(raw, max_depth=64).struct_field(0) is not None


def test_wrong_wire_type_for_an_accessor() -> None:
    """Asking for a string where an int was written names the tag and its offset."""
    raw = _int_bytes(1, 5) + bytes.fromhex("2601") + b"z"
    decoded = decode_struct(raw)
    with pytest.raises(TarsDecodeError, match="tag 2: expected an integer") as info:
        decoded.int_field(2)
    assert info.value.offset == 2
    with pytest.raises(TarsDecodeError, match="does not fit int8"):
        decode_struct(_int_bytes(1, 300)).int_field(1, bits=8)
    with pytest.raises(TarsDecodeError, match="not UTF-8"):
        decode_struct(bytes.fromhex("1601ff")).str_field(1)


@pytest.mark.parametrize(
    ("tag", "value"), [(256, 0), (-1, 0), (0, INT64_MAX + 1), (0, INT64_MIN - 1)]
)
def test_unencodable_values_raise(tag: int, value: int) -> None:
    """Tags outside 0..255 and integers beyond int64 raise TarsEncodeError."""
    with pytest.raises(TarsEncodeError):
        TarsWriter().write_int(tag, value)


# -- property tests -------------------------------------------------------------------------

LONG_STRINGS = ["a" * 255, "a" * 256, "é" * 128, "中" * 100]
_INT64 = st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
_SCALARS: st.SearchStrategy[tuple[str, Any]] = st.one_of(
    st.tuples(st.just("int"), st.one_of(_INT64, st.sampled_from(BOUNDARY_INTS))),
    st.tuples(st.just("str"), st.one_of(st.text(max_size=40), st.sampled_from(LONG_STRINGS))),
    st.tuples(st.just("bytes"), st.one_of(st.binary(max_size=40), st.just(b"\x00" * 300))),
    st.tuples(st.just("list"), st.lists(st.binary(max_size=20), max_size=5)),
)
_TAGS = st.integers(min_value=0, max_value=255)


def _fields(children: st.SearchStrategy[tuple[str, Any]]) -> st.SearchStrategy[dict[int, Any]]:
    return st.dictionaries(_TAGS, children, max_size=5)


_VALUES = st.recursive(
    _SCALARS, lambda inner: st.tuples(st.just("struct"), _fields(inner)), max_leaves=12
)


def _encode(fields: dict[int, tuple[str, Any]]) -> bytes:
    w = TarsWriter()
    for tag in sorted(fields):
        kind, value = fields[tag]
        if kind == "int":
            w.write_int(tag, value)
        elif kind == "str":
            w.write_string(tag, value)
        elif kind == "bytes":
            w.write_bytes(tag, value)
        elif kind == "list":
            w.write_list(tag, value, TarsWriter.write_bytes)
        else:
            w.write_struct(tag, _encode(value))
    return w.getvalue()


def _check(decoded: TarsStruct, fields: dict[int, tuple[str, Any]]) -> None:
    assert set(decoded.fields) == set(fields)
    for tag, (kind, value) in fields.items():
        if kind == "int":
            assert decoded.int_field(tag, default=None) == value
        elif kind == "str":
            assert decoded.str_field(tag, default=None) == value
        elif kind == "bytes":
            assert decoded.bytes_field(tag, default=None) == value
        elif kind == "list":
            assert [item.value for item in decoded.list_field(tag)] == value
        else:
            nested = decoded.struct_field(tag, required=True)
            assert nested is not None
            _check(nested, value)


def _decode_or_error(raw: bytes) -> TarsStruct | TarsDecodeError:
    try:
        return decode_struct(raw)
    except TarsDecodeError as exc:
        return exc


@given(_fields(_VALUES))
def test_round_trip(fields: dict[int, tuple[str, Any]]) -> None:
    """Any struct of ints, strings, bytes, lists and nested structs decodes to what was written."""
    raw = _encode(fields)
    _check(decode_struct(raw), fields)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_untyped(raw: bytes) -> None:
    """Random input either decodes or raises TarsDecodeError with an offset inside the input."""
    outcome = _decode_or_error(raw)
    if isinstance(outcome, TarsDecodeError):
        assert 0 <= outcome.offset <= len(raw)


@given(_fields(_VALUES), st.data())
def test_truncation_is_typed(fields: dict[int, tuple[str, Any]], data: st.DataObject) -> None:
    """Cutting a valid encoding anywhere gives a shorter struct or a typed error, never more."""
    raw = _encode(fields)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    outcome = _decode_or_error(raw[:cut])
    if isinstance(outcome, TarsDecodeError):
        assert outcome.offset <= cut
    else:
        assert set(outcome.fields) <= set(fields)
