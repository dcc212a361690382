"""A minimal TARS reader for the node's Transaction struct (spec section 5.1).

Written on purpose without the adapter's codec: an emulator that shared the client's decoder
would accept whatever that encoder produced, bugs included.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

from devnet.fisco.errors import ExecutionCancelled, MalformedTransaction
from devnet.fisco.hashing import TransactionData

_INT8, _INT16, _INT32, _INT64, _FLOAT, _DOUBLE = 0, 1, 2, 3, 4, 5
_STRING1, _STRING4, _MAP, _LIST, _STRUCT_BEGIN, _STRUCT_END, _ZERO, _SIMPLE_LIST = range(6, 14)

TarsValue = int | float | bytes | list["TarsValue"] | dict[int, "TarsValue"]
_INT32_MIN, _INT32_END = -(2**31), 2**31
_STOP_CHECK_EVERY = 4096  # list items between looks at the stop flag


class _Reader:
    """Reads one TARS buffer; ``stop`` abandons a long list when the node stops.

    The transaction struct has no list field, but unknown tags may hold one of millions of
    items; each costs a step of a Python loop, which lets other threads run in between.
    """

    def __init__(self, data: bytes, stop: threading.Event | None = None) -> None:
        self.data = data
        self.pos = 0
        self.stop = stop

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise MalformedTransaction("truncated TARS data")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def head(self) -> tuple[int, int]:
        byte = self.take(1)[0]
        tag, kind = byte >> 4, byte & 0x0F
        if tag == 15:
            tag = self.take(1)[0]
        return tag, kind

    def integer(self, kind: int) -> int:
        fmt = {_INT8: ">b", _INT16: ">h", _INT32: ">i", _INT64: ">q"}.get(kind)
        if kind == _ZERO:
            return 0
        if fmt is None:
            raise MalformedTransaction(f"expected a TARS integer, got type {kind}")
        value: int = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def value(self, kind: int, depth: int = 0) -> TarsValue:
        if depth > 16:
            raise MalformedTransaction("TARS nesting too deep")
        if kind in (_INT8, _INT16, _INT32, _INT64, _ZERO):
            return self.integer(kind)
        if kind == _FLOAT:
            return float(struct.unpack(">f", self.take(4))[0])
        if kind == _DOUBLE:
            return float(struct.unpack(">d", self.take(8))[0])
        if kind == _STRING1:
            return self.take(self.take(1)[0])
        if kind == _STRING4:
            return self.take(struct.unpack(">I", self.take(4))[0])
        if kind == _LIST:
            return self._list(depth)
        if kind == _MAP:
            raise MalformedTransaction("TARS maps are not used by the transaction struct")
        if kind == _SIMPLE_LIST:
            _, inner = self.head()
            if inner != _INT8:
                raise MalformedTransaction("simple list must hold bytes")
            return self.take(self._length())
        if kind == _STRUCT_BEGIN:
            return self.struct(depth + 1)
        raise MalformedTransaction(f"unknown TARS type {kind}")

    def _list(self, depth: int) -> list[TarsValue]:
        items: list[TarsValue] = []
        for index in range(self._length()):
            if index % _STOP_CHECK_EVERY == 0 and self.stop is not None and self.stop.is_set():
                raise ExecutionCancelled("the node is stopping")
            items.append(self.value(self.head()[1], depth + 1))
        return items

    def _length(self) -> int:
        length = self.integer(self.head()[1])
        if length < 0:
            raise MalformedTransaction("negative TARS length")
        return length

    def struct(self, depth: int = 0) -> dict[int, TarsValue]:
        fields: dict[int, TarsValue] = {}
        while self.pos < len(self.data):
            tag, kind = self.head()
            if kind == _STRUCT_END:
                return fields
            fields[tag] = self.value(kind, depth)
        if depth > 0:
            raise MalformedTransaction("unterminated TARS struct")
        return fields


@dataclass(frozen=True)
class WireTransaction:
    data: TransactionData
    data_hash: bytes
    signature: bytes
    import_time: int
    attribute: int
    extra_data: str


def _int(fields: dict[int, TarsValue], tag: int) -> int:
    value = fields.get(tag, 0)
    if not isinstance(value, int):
        raise MalformedTransaction(f"TARS field {tag} is not an integer")
    return value


def _int32(fields: dict[int, TarsValue], tag: int) -> int:
    """An ``int`` field of the struct: TarsCpp refuses a wider value (TarsDecodeMismatch)."""
    value = _int(fields, tag)
    if not _INT32_MIN <= value < _INT32_END:
        raise MalformedTransaction(f"TARS field {tag} does not fit an int32")
    return value


def _bytes(fields: dict[int, TarsValue], tag: int) -> bytes:
    value = fields.get(tag, b"")
    if not isinstance(value, bytes):
        raise MalformedTransaction(f"TARS field {tag} is not bytes")
    return value


def _text(fields: dict[int, TarsValue], tag: int) -> str:
    try:
        return _bytes(fields, tag).decode()
    except UnicodeDecodeError as exc:
        raise MalformedTransaction(f"TARS field {tag} is not UTF-8") from exc


def decode_transaction(raw: bytes, stop: threading.Event | None = None) -> WireTransaction:
    reader = _Reader(raw, stop)
    outer = reader.struct()
    if reader.pos != len(raw):
        raise MalformedTransaction("trailing bytes after the transaction")
    data = outer.get(1)
    if not isinstance(data, dict):
        raise MalformedTransaction("transaction has no data struct")
    return WireTransaction(
        data=TransactionData(
            version=_int32(data, 1),
            chain_id=_text(data, 2),
            group_id=_text(data, 3),
            block_limit=_int(data, 4),
            nonce=_text(data, 5),
            to=_text(data, 6),
            input=_bytes(data, 7),
            abi=_text(data, 8),
        ),
        data_hash=_bytes(outer, 2),
        signature=_bytes(outer, 3),
        import_time=_int(outer, 4),
        attribute=_int32(outer, 5),
        extra_data=_text(outer, 8),
    )
