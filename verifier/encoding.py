"""Strict parsing of the JSON values found in chain RPC output.

Every parser takes the field's path so that a failure says exactly which field is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from verifier.errors import MalformedEvidence

# Possessive and with an optional closing quote, so an unterminated string is consumed once
# instead of rescanned from every quote (which made the scan quadratic).
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_JSON_BRACKETS = re.compile(r"[\[\]{}]")
MAX_JSON_DEPTH = 64
_HEX = re.compile(r"[0-9a-fA-F]*")
_QUANTITY = re.compile(r"0x(0|[1-9a-fA-F][0-9a-fA-F]*)")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")

Prefix = Literal["required", "optional", "forbidden"]


def parse_hex(
    value: object, field: str, *, length: int | None = None, prefix: Prefix = "required"
) -> bytes:
    """Decode a hex string of bytes; ``length`` is in bytes."""
    if not isinstance(value, str):
        raise MalformedEvidence(f"expected a hex string, got {type(value).__name__}", field=field)
    text = value
    if text[:2] in ("0x", "0X"):
        if prefix == "forbidden":
            raise MalformedEvidence("hex must not start with 0x here", field=field)
        text = text[2:]
    elif prefix == "required":
        raise MalformedEvidence("hex must start with 0x", field=field)
    if len(text) % 2 or not _HEX.fullmatch(text):
        raise MalformedEvidence(f"not an even-length hex string: {_preview(value)}", field=field)
    data = bytes.fromhex(text)
    if length is not None and len(data) != length:
        raise MalformedEvidence(f"expected {length} bytes, got {len(data)}", field=field)
    return data


def parse_quantity(value: object, field: str) -> int:
    """Decode an Ethereum JSON-RPC quantity: ``0x``-hex, no leading zeros."""
    if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
        raise MalformedEvidence(
            f"expected a hex quantity like 0x1a, got {_preview(value)}", field=field
        )
    return int(value, 16)


def parse_int(value: object, field: str, *, minimum: int = 0, bits: int = 64) -> int:
    """A JSON integer (not a bool, not a string) within ``[minimum, 2**(bits-1))``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEvidence(f"expected an integer, got {_preview(value)}", field=field)
    if value < minimum or value >= 1 << (bits - 1):
        raise MalformedEvidence(f"integer {value} out of range", field=field)
    return value


def parse_decimal_string(value: object, field: str) -> str:
    """A non-negative integer written as a decimal string, as FISCO prints ``gasUsed``."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise MalformedEvidence(f"expected a decimal string, got {_preview(value)}", field=field)
    return value


def parse_str(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise MalformedEvidence(f"expected a string, got {_preview(value)}", field=field)
    return value


def parse_list(value: object, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedEvidence(f"expected a list, got {_preview(value)}", field=field)
    return value


def parse_object(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedEvidence(f"expected an object, got {_preview(value)}", field=field)
    return value


def utf8_bytes(value: object, field: str) -> bytes:
    """A string's UTF-8 bytes, as FISCO hashes its text fields."""
    try:
        return parse_str(value, field).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedEvidence("not encodable as UTF-8", field=field) from exc


def raw_bytes(value: object, field: str) -> bytes:
    """``value`` itself, if it is bytes: for callers that pass typed fields, not JSON."""
    if not isinstance(value, bytes | bytearray):
        raise MalformedEvidence(f"expected bytes, got {type(value).__name__}", field=field)
    return bytes(value)


def load_json(raw: bytes, *, what: str = "document", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse UTF-8 JSON text nested at most ``max_depth`` deep, whatever the recursion limit.

    ``json.loads`` recurses on the C stack once per nesting level and relies on the
    interpreter's recursion limit to stop; a library that raises that limit (py-evm does) turns
    a deeply nested document into a crash. The text is therefore decoded strictly as UTF-8
    (``json.loads`` would also guess UTF-16/32 from bytes) and its depth counted first, in one
    linear pass.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEvidence(f"not UTF-8 text: {exc.reason}", field=what) from exc
    depth = deepest = 0
    for bracket in _JSON_BRACKETS.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > max_depth:
        raise MalformedEvidence(f"nested more than {max_depth} levels deep", field=what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedEvidence(
            f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field=what
        ) from exc
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise MalformedEvidence(f"not acceptable JSON: {exc}", field=what) from exc


def require(obj: Mapping[str, Any], key: str, path: str) -> Any:
    """``obj[key]``, or a MalformedEvidence naming ``path.key``."""
    if key not in obj:
        raise MalformedEvidence("missing field", field=f"{path}.{key}" if path else key)
    return obj[key]


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
