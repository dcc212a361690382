"""Strict Recursive Length Prefix (RLP) encoding, the serialisation of every Ethereum object.

Items are byte strings or lists of items. Integers are not items: :func:`encode_uint` turns
one into its minimal big-endian bytes first (0 is the empty string), as the Yellow Paper does.

:func:`decode` accepts only canonical encodings, so that a value has exactly one encoding. It
rejects a single byte below 0x80 written as a one-byte string, a length with leading zeros, the
long form for a payload under 56 bytes, trailing bytes, truncated input, and lists nested more
than :data:`MAX_DEPTH` deep (no Ethereum object comes close; the bound keeps hostile input from
exhausting the stack).

The proof walker in :mod:`verifier.merkle.mpt` does not build objects at all: it uses the
byte-offset scanner :func:`list_payload` / :func:`list_items`, which reports where each item's
payload lies inside the original buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeAlias, Union

from verifier.errors import MalformedEvidence

RlpItem: TypeAlias = Union[bytes, Sequence["RlpItem"]]  # noqa: UP007 (recursive alias)
"""What :func:`encode` takes: bytes, or a list/tuple of items."""

Decoded: TypeAlias = Union[bytes, list["Decoded"]]  # noqa: UP007 (recursive alias)
"""What :func:`decode` returns: bytes, or a list of decoded items."""

ItemBounds: TypeAlias = tuple[int, int, bool]
"""``(payload_start, payload_end, is_list)`` of one item, as offsets into the scanned buffer."""

MAX_DEPTH: Final = 32
_SHORT: Final = 56
_STRING: Final = 0x80
_LONG_STRING: Final = 0xB8
_LIST: Final = 0xC0
_LONG_LIST: Final = 0xF8


class RlpError(MalformedEvidence):
    """Bytes that are not the canonical RLP encoding of an item."""

    def __init__(self, message: str, *, check: str = "rlp", offset: int | None = None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"invalid RLP{where}: {message}", check=check)
        self.detail = message
        self.offset = offset


def encode_uint(value: int) -> bytes:
    """Minimal big-endian bytes of a non-negative integer; 0 gives ``b""``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedEvidence(f"expected a non-negative integer, got {value!r}", check="rlp")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def encode(item: RlpItem) -> bytes:
    """The RLP encoding of ``item`` (bytes, or a list/tuple of items)."""
    if isinstance(item, bytes | bytearray):
        length = len(item)
        if length == 1 and item[0] < _STRING:
            return bytes(item)
        return _length_prefix(length, _STRING) + item
    if isinstance(item, list | tuple):
        payload = b"".join([encode(child) for child in item])
        return _length_prefix(len(payload), _LIST) + payload
    raise TypeError(f"cannot RLP-encode {type(item).__name__}; convert integers with encode_uint")


def encode_list_of_encoded(parts: Sequence[bytes]) -> bytes:
    """A list whose items are already RLP-encoded (lets a trie embed a node's own encoding)."""
    payload = b"".join(parts)
    return _length_prefix(len(payload), _LIST) + payload


def _length_prefix(length: int, offset: int) -> bytes:
    if length < _SHORT:
        return bytes((offset + length,))
    size = encode_uint(length)
    return bytes((offset + _SHORT - 1 + len(size),)) + size


def decode(data: bytes, *, check: str = "rlp") -> Decoded:
    """Decode exactly one canonical item spanning all of ``data``; raise RlpError otherwise."""
    if not isinstance(data, bytes | bytearray):
        raise RlpError(f"expected bytes, got {type(data).__name__}", check=check)
    try:
        start, end, is_list = _header(data, 0, len(data))
        if end != len(data):
            raise RlpError(f"{len(data) - end} trailing bytes after the item", offset=end)
        return _build(data, start, end, is_list, 0)
    except RlpError as exc:
        if exc.check == check:
            raise
        raise RlpError(exc.detail, check=check, offset=exc.offset) from None


def decode_uint(raw: bytes, *, field: str, check: str, max_bytes: int = 32) -> int:
    """An integer stored as canonical big-endian bytes (no leading zero byte, at most max_bytes)."""
    if len(raw) > max_bytes:
        raise MalformedEvidence(f"integer longer than {max_bytes} bytes", field=field, check=check)
    if raw[:1] == b"\x00":
        raise MalformedEvidence("integer with a leading zero byte", field=field, check=check)
    return int.from_bytes(raw, "big")


def _build(data: bytes, start: int, end: int, is_list: bool, depth: int) -> Decoded:
    if not is_list:
        return bytes(data[start:end])
    if depth >= MAX_DEPTH:
        raise RlpError(f"lists nested more than {MAX_DEPTH} deep", offset=start)
    return [_build(data, s, e, lst, depth + 1) for s, e, lst in list_items(data, start, end)]


def _header(data: bytes, pos: int, limit: int) -> ItemBounds:
    """Payload bounds of the item starting at ``pos``, which must end by ``limit``."""
    if pos >= limit:
        raise RlpError("truncated: expected an item", offset=pos)
    first = data[pos]
    if first < _STRING:
        return pos, pos + 1, False
    if first < _LONG_STRING:
        start, end = pos + 1, pos + 1 + first - _STRING
        _check_end(end, limit, pos)
        if first == _STRING + 1 and data[start] < _STRING:
            raise RlpError("single byte below 0x80 encoded as a string", offset=pos)
        return start, end, False
    if first < _LIST:
        start, end = _long(data, pos, limit, first - _LONG_STRING + 1)
        return start, end, False
    if first < _LONG_LIST:
        start, end = pos + 1, pos + 1 + first - _LIST
        _check_end(end, limit, pos)
        return start, end, True
    start, end = _long(data, pos, limit, first - _LONG_LIST + 1)
    return start, end, True


def _long(data: bytes, pos: int, limit: int, size_len: int) -> tuple[int, int]:
    """Payload bounds of a long-form item; its length field must be canonical."""
    start = pos + 1 + size_len
    _check_end(start, limit, pos)
    if data[pos + 1] == 0:
        raise RlpError("length field with a leading zero", offset=pos)
    length = int.from_bytes(data[pos + 1 : start], "big")
    if length < _SHORT:
        raise RlpError("long form used for a payload under 56 bytes", offset=pos)
    _check_end(start + length, limit, pos)
    return start, start + length


def _check_end(end: int, limit: int, pos: int) -> None:
    if end > limit:
        raise RlpError(f"truncated: item needs {end - limit} more bytes", offset=pos)


def list_payload(data: bytes) -> tuple[int, int]:
    """Payload bounds of ``data``, which must be exactly one RLP list and nothing else."""
    start, end, is_list = _header(data, 0, len(data))
    if not is_list:
        raise RlpError("expected a list, found a string", offset=0)
    if end != len(data):
        raise RlpError(f"{len(data) - end} trailing bytes after the list", offset=end)
    return start, end


def list_items(data: bytes, start: int, end: int) -> list[ItemBounds]:
    """The items of the list payload ``data[start:end]``, without decoding any of them.

    Each header is checked for canonical form and for fitting inside the payload; the
    contents of nested lists are not looked at until the caller scans them in turn.
    """
    items: list[ItemBounds] = []
    append = items.append
    pos = start
    while pos < end:
        first = data[pos]
        if first < _STRING:
            append((pos, pos + 1, False))
            pos += 1
        elif first < _LONG_STRING:
            payload = pos + 1
            pos = payload + first - _STRING
            if first == _STRING + 1 and pos <= end and data[payload] < _STRING:
                raise RlpError("single byte below 0x80 encoded as a string", offset=payload - 1)
            append((payload, pos, False))
        elif _LIST <= first < _LONG_LIST:
            payload = pos + 1
            pos = payload + first - _LIST
            append((payload, pos, True))
        else:
            payload, pos, is_list = _header(data, pos, end)
            append((payload, pos, is_list))
    if pos != end:
        raise RlpError(f"truncated: last item overruns its list by {pos - end} bytes", offset=end)
    return items
