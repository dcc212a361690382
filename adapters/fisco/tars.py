"""A minimal, strict TARS ("JCE") binary codec: what FISCO BCOS 3.x puts on the wire.

Every field is a head and a value. The head is one byte ``(tag << 4) | type`` when the tag is
below 15, else ``0xF0 | type`` followed by the tag byte. Integers use the smallest of
zero/int8/int16/int32/int64 (big-endian, signed); strings are type 6 (u8 length) or 7 (u32
length); ``vector<byte>`` is a simple list (type 13: a head ``(0, int8)``, the length as a TARS
int, the raw bytes); lists (type 9) are a length then elements tagged 0; a nested struct is
``(tag, 10)`` … ``(0, 11)``. A top-level struct has no begin/end marker: it ends with the input.

The reader checks every length against the remaining input, caps nesting depth, requires
ascending field tags and raises :class:`TarsDecodeError` with the byte offset, never an
``IndexError``. It keeps unknown tags (callers simply ignore them) and accepts non-canonical
widths, as the reference readers do.
"""

from __future__ import annotations

import struct as _struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, TypeAlias, TypeVar

from adapters.fisco.errors import TarsDecodeError, TarsEncodeError

T = TypeVar("T")

MAX_TAG: Final = 255
MAX_DEPTH: Final = 32
_EXTENDED_TAG: Final = 15
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_U32_MAX: Final = (1 << 32) - 1


class TarsType(IntEnum):
    """The 4-bit type in a TARS head."""

    INT8 = 0
    INT16 = 1
    INT32 = 2
    INT64 = 3
    FLOAT = 4
    DOUBLE = 5
    STRING1 = 6
    STRING4 = 7
    MAP = 8
    LIST = 9
    STRUCT_BEGIN = 10
    STRUCT_END = 11
    ZERO = 12
    SIMPLE_LIST = 13


_INT_WIDTHS: Final = {TarsType.INT8: 1, TarsType.INT16: 2, TarsType.INT32: 4, TarsType.INT64: 8}
_INT_TYPES: Final = frozenset({TarsType.ZERO, *_INT_WIDTHS})
_STRING_TYPES: Final = frozenset({TarsType.STRING1, TarsType.STRING4})


class TarsWriter:
    """Appends TARS fields to a buffer; ``getvalue()`` returns the bytes written so far."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def _head(self, tag: int, type_: TarsType) -> None:
        if not 0 <= tag <= MAX_TAG:
            raise TarsEncodeError(f"tag must be within 0..{MAX_TAG}", tag=tag)
        if tag < _EXTENDED_TAG:
            self._buf.append((tag << 4) | type_)
        else:
            self._buf += bytes((0xF0 | type_, tag))

    def write_int(self, tag: int, value: int) -> None:
        """Any integer TARS type (byte, short, int, long): the smallest width that holds it."""
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise TarsEncodeError(f"integer {value} does not fit in int64", tag=tag)
        if value == 0:
            self._head(tag, TarsType.ZERO)
            return
        for type_, width in _INT_WIDTHS.items():
            if -(1 << (8 * width - 1)) <= value < 1 << (8 * width - 1):
                self._head(tag, type_)
                self._buf += value.to_bytes(width, "big", signed=True)
                return

    def write_string(self, tag: int, value: str) -> None:
        """A UTF-8 string: type 6 up to 255 bytes, else type 7."""
        raw = value.encode("utf-8")
        if len(raw) <= 0xFF:
            self._head(tag, TarsType.STRING1)
            self._buf.append(len(raw))
        elif len(raw) <= _U32_MAX:
            self._head(tag, TarsType.STRING4)
            self._buf += len(raw).to_bytes(4, "big")
        else:
            raise TarsEncodeError(f"string of {len(raw)} bytes is too long", tag=tag)
        self._buf += raw

    def write_bytes(self, tag: int, value: bytes) -> None:
        """A ``vector<byte>`` as a simple list."""
        self._head(tag, TarsType.SIMPLE_LIST)
        self._head(0, TarsType.INT8)
        self.write_int(0, len(value))
        self._buf += value

    def write_struct(self, tag: int, body: bytes) -> None:
        """A nested struct whose fields were written, in tag order, into ``body``."""
        self._head(tag, TarsType.STRUCT_BEGIN)
        self._buf += body
        self._head(0, TarsType.STRUCT_END)

    def write_list(
        self, tag: int, items: Sequence[T], write_item: Callable[[TarsWriter, int, T], None]
    ) -> None:
        """A ``vector<T>``: e.g. ``write_list(3, sigs, TarsWriter.write_bytes)``."""
        self._head(tag, TarsType.LIST)
        self.write_int(0, len(items))
        for item in items:
            write_item(self, 0, item)


@dataclass(frozen=True, slots=True)
class TarsField:
    """One decoded field: its tag, wire type, the offset of its head, and its value."""

    tag: int
    type: TarsType
    offset: int
    value: TarsValue


@dataclass(frozen=True, slots=True)
class TarsStruct:
    """A decoded struct body; typed accessors check the wire type and report offsets."""

    offset: int
    fields: Mapping[int, TarsField]

    def _field(self, tag: int, types: frozenset[TarsType], what: str) -> TarsField | None:
        field = self.fields.get(tag)
        if field is not None and field.type not in types:
            raise TarsDecodeError(
                f"tag {tag}: expected {what}, got {field.type.name}", offset=field.offset
            )
        return field

    def _missing(self, tag: int) -> TarsDecodeError:
        return TarsDecodeError(f"required tag {tag} is missing", offset=self.offset)

    def int_field(self, tag: int, *, default: int | None = 0, bits: int = 64) -> int:
        """An integer that must fit a signed ``bits``-bit type; ``default=None`` = required."""
        field = self._field(tag, _INT_TYPES, "an integer")
        if field is None:
            if default is None:
                raise self._missing(tag)
            return default
        value = field.value
        assert isinstance(value, int)
        if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            raise TarsDecodeError(f"tag {tag}: {value} does not fit int{bits}", offset=field.offset)
        return value

    def str_field(self, tag: int, *, default: str | None = "") -> str:
        """A UTF-8 string; ``default=None`` = required."""
        field = self._field(tag, _STRING_TYPES, "a string")
        if field is None:
            if default is None:
                raise self._missing(tag)
            return default
        assert isinstance(field.value, bytes)
        try:
            return field.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TarsDecodeError(f"tag {tag}: string is not UTF-8", offset=field.offset) from exc

    def bytes_field(self, tag: int, *, default: bytes | None = b"") -> bytes:
        """A ``vector<byte>``; ``default=None`` = required."""
        field = self._field(tag, frozenset({TarsType.SIMPLE_LIST}), "bytes")
        if field is None:
            if default is None:
                raise self._missing(tag)
            return default
        assert isinstance(field.value, bytes)
        return field.value

    def struct_field(self, tag: int, *, required: bool = False) -> TarsStruct | None:
        """A nested struct, or ``None`` when absent and not required."""
        field = self._field(tag, frozenset({TarsType.STRUCT_BEGIN}), "a struct")
        if field is None:
            if required:
                raise self._missing(tag)
            return None
        assert isinstance(field.value, TarsStruct)
        return field.value

    def list_field(self, tag: int) -> tuple[TarsField, ...]:
        """The elements of a list (empty when absent)."""
        field = self._field(tag, frozenset({TarsType.LIST}), "a list")
        if field is None:
            return ()
        assert isinstance(field.value, tuple)
        return tuple(item for item in field.value if isinstance(item, TarsField))


TarsValue: TypeAlias = (
    int
    | float
    | bytes
    | TarsStruct
    | tuple[TarsField, ...]
    | tuple[tuple[TarsField, TarsField], ...]
)


def decode_struct(data: bytes, *, max_depth: int = MAX_DEPTH) -> TarsStruct:
    """Decode a top-level struct body (fields until the end of ``data``)."""
    return _Reader(bytes(data), max_depth).top_level()


class _Reader:
    __slots__ = ("_data", "_max_depth", "_pos")

    def __init__(self, data: bytes, max_depth: int) -> None:
        self._data = data
        self._pos = 0
        self._max_depth = max_depth

    def top_level(self) -> TarsStruct:
        return self._struct_body(depth=0, top_level=True)

    def _take(self, n: int) -> bytes:
        left = len(self._data) - self._pos
        if n > left:
            raise TarsDecodeError(f"truncated: needs {n} bytes, {left} left", offset=self._pos)
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def _head(self) -> tuple[int, TarsType, int]:
        offset = self._pos
        byte = self._take(1)[0]
        tag, raw_type = byte >> 4, byte & 0x0F
        if tag == _EXTENDED_TAG:
            tag = self._take(1)[0]
        if raw_type > TarsType.SIMPLE_LIST:
            raise TarsDecodeError(f"unknown TARS type {raw_type}", offset=offset)
        return tag, TarsType(raw_type), offset

    def _struct_body(self, *, depth: int, top_level: bool) -> TarsStruct:
        start = self._pos
        fields: dict[int, TarsField] = {}
        last_tag = -1
        while not (top_level and self._pos == len(self._data)):
            tag, type_, offset = self._head()
            if type_ is TarsType.STRUCT_END:
                if top_level:
                    raise TarsDecodeError("struct end outside a struct", offset=offset)
                break
            if tag <= last_tag:
                raise TarsDecodeError(f"tag {tag} after tag {last_tag}", offset=offset)
            last_tag = tag
            fields[tag] = self._value(tag, type_, offset, depth)
        return TarsStruct(offset=start, fields=fields)

    def _value(self, tag: int, type_: TarsType, offset: int, depth: int) -> TarsField:
        value: TarsValue
        if type_ in _INT_TYPES:
            value = self._int(type_)
        elif type_ is TarsType.FLOAT:
            value = _struct.unpack(">f", self._take(4))[0]
        elif type_ is TarsType.DOUBLE:
            value = _struct.unpack(">d", self._take(8))[0]
        elif type_ is TarsType.STRING1:
            value = self._take(self._take(1)[0])
        elif type_ is TarsType.STRING4:
            value = self._take(int.from_bytes(self._take(4), "big"))
        elif type_ is TarsType.SIMPLE_LIST:
            value = self._simple_list()
        elif type_ is TarsType.STRUCT_END:
            raise TarsDecodeError("struct end where a value was expected", offset=offset)
        else:
            if depth >= self._max_depth:
                raise TarsDecodeError(f"nesting deeper than {self._max_depth}", offset=offset)
            value = self._container(type_, depth + 1)
        return TarsField(tag=tag, type=type_, offset=offset, value=value)

    def _container(self, type_: TarsType, depth: int) -> TarsValue:
        if type_ is TarsType.STRUCT_BEGIN:
            return self._struct_body(depth=depth, top_level=False)
        if type_ is TarsType.LIST:
            count = self._length(min_item_size=1)
            return tuple(self._element(0, depth) for _ in range(count))
        count = self._length(min_item_size=2)  # MAP: key tagged 0, value tagged 1
        return tuple((self._element(0, depth), self._element(1, depth)) for _ in range(count))

    def _int(self, type_: TarsType) -> int:
        if type_ is TarsType.ZERO:
            return 0
        return int.from_bytes(self._take(_INT_WIDTHS[type_]), "big", signed=True)

    def _length(self, *, min_item_size: int) -> int:
        tag, type_, offset = self._head()
        if tag != 0 or type_ not in _INT_TYPES:
            raise TarsDecodeError(
                f"length must be an integer tagged 0, got tag {tag}", offset=offset
            )
        length = self._int(type_)
        left = len(self._data) - self._pos
        if length < 0 or length * min_item_size > left:
            raise TarsDecodeError(f"length {length} exceeds the {left} bytes left", offset=offset)
        return length

    def _simple_list(self) -> bytes:
        tag, type_, offset = self._head()
        if tag != 0 or type_ is not TarsType.INT8:
            raise TarsDecodeError("simple list element type must be int8 tagged 0", offset=offset)
        return self._take(self._length(min_item_size=1))

    def _element(self, expected_tag: int, depth: int) -> TarsField:
        tag, type_, offset = self._head()
        if tag != expected_tag:
            raise TarsDecodeError(f"element tag {tag}, expected {expected_tag}", offset=offset)
        return self._value(tag, type_, offset, depth)
