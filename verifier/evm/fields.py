"""JSON-RPC field parsers shared by the EVM header, receipt and transaction codecs.

Each returns the bytes that go into the consensus RLP: a quantity becomes its minimal
big-endian bytes (0 is the empty string), fixed-size data is length-checked. Field paths in
errors read like ``block.baseFeePerGas`` or ``receipt.logs[2].topics[0]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from verifier.encoding import parse_hex, parse_quantity, require
from verifier.errors import MalformedEvidence
from verifier.rlp import encode_uint

UINT256_BYTES: Final = 32
UINT64_BYTES: Final = 8


def quantity(obj: Mapping[str, Any], key: str, path: str, *, max_bytes: int = UINT256_BYTES) -> int:
    """A required hex quantity (``0x1a``, no leading zeros) of at most ``max_bytes`` bytes."""
    field = f"{path}.{key}"
    raw = require(obj, key, path)
    if isinstance(raw, str) and len(raw) > 2 + 2 * max_bytes:
        raise MalformedEvidence(f"quantity longer than {max_bytes} bytes", field=field)
    value = parse_quantity(raw, field)
    if value.bit_length() > 8 * max_bytes:
        raise MalformedEvidence(f"quantity longer than {max_bytes} bytes", field=field)
    return value


def quantity_bytes(
    obj: Mapping[str, Any], key: str, path: str, *, max_bytes: int = UINT256_BYTES
) -> bytes:
    """:func:`quantity` as the minimal big-endian bytes RLP commits to."""
    return encode_uint(quantity(obj, key, path, max_bytes=max_bytes))


def data_bytes(obj: Mapping[str, Any], key: str, path: str, *, length: int | None = None) -> bytes:
    """Required ``0x`` hex data, of exactly ``length`` bytes when given."""
    return parse_hex(require(obj, key, path), f"{path}.{key}", length=length)


def is_absent(obj: Mapping[str, Any], key: str) -> bool:
    """True when ``key`` is missing or JSON null, both meaning "not there" in RPC output."""
    return obj.get(key) is None
