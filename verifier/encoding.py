"""Strict parsing of the JSON values found in chain RPC output.

Every parser takes the field's path so that a failure says exactly which field is wrong.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from itertools import accumulate
from typing import Any, Final, Literal

from verifier.errors import MalformedEvidence
from verifier.limits import (
    LIMIT_CHECK,
    MAX_BUNDLE_BYTES,
    MAX_DECODED_TEXT_BYTES,
    MAX_JSON_DEPTH,
    MAX_JSON_INT_DIGITS,
    MAX_JSON_VALUES,
    check_count,
)

# Possessive and with an optional closing quote, so an unterminated string is consumed once
# instead of rescanned from every quote (which made the scan quadratic).
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP: Final = tuple(1 if b in b"[{" else -1 for b in range(256))
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


def load_json(
    raw: bytes,
    *,
    what: str = "document",
    max_depth: int = MAX_JSON_DEPTH,
    max_bytes: int = MAX_BUNDLE_BYTES,
    max_values: int = MAX_JSON_VALUES,
) -> Any:
    """Parse UTF-8 JSON text, bounded in size, value count and depth before anything is built.

    ``json.loads`` recurses on the C stack once per nesting level and relies on the
    interpreter's recursion limit to stop; a library that raises that limit (py-evm does) turns
    a deeply nested document into a crash. It also builds every value at once: 16 MiB of ``{},``
    would be 5.6 million dicts. So the size is checked, the text decoded strictly as UTF-8
    (``json.loads`` would also guess UTF-16/32 from bytes) and its decoded size checked, its
    values counted and its depth
    measured in linear passes that allocate nothing per value (:func:`_check_shape`), and only
    then is it parsed, with integers bounded in digits. Errors are MalformedEvidence naming
    ``what``: check ``limit`` for a bound (``verifier.limits``), ``format`` for text that is not
    JSON.
    """
    check_count(len(raw), max_bytes, field=what, what="bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEvidence(f"not UTF-8 text: {exc.reason}", field=what) from exc
    check_count(sys.getsizeof(text), MAX_DECODED_TEXT_BYTES, field=what, what="bytes decoded")
    _check_shape(raw, what, max_depth=max_depth, max_values=max_values)
    try:
        return json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise MalformedEvidence(
            f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field=what
        ) from exc
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 80 digits
        raise MalformedEvidence(f"not acceptable JSON: {exc}", field=what) from exc


def _check_shape(raw: bytes, what: str, *, max_depth: int, max_values: int) -> None:
    """Bound the values and the depth of the JSON text ``raw`` without building any value.

    The value count is over-approximated on the whole text, strings included, with
    ``bytes.count`` alone: every value or key but the first follows a comma, a colon or an
    opening bracket, and every string has two quotes. Only when both counts are within
    ``max_values`` are strings blanked out (one regex match per string, so a bounded number) to
    measure the depth. The scan reads the UTF-8 bytes as Latin-1, one byte a character, so
    every copy stays at one byte a character (decoded text takes 4 once an emoji is in it) and
    the regex's pieces are cached one-character strings; UTF-8 never uses bytes below 0x80
    inside a multi-byte character, so quotes, backslashes and brackets are where they were.
    """
    opens = raw.count(b"[") + raw.count(b"{")
    values = raw.count(b",") + raw.count(b":") + opens + 1
    check_count(values, max_values, field=what, what="JSON values (commas, colons, '[' and '{')")
    strings = raw.count(b'"') // 2
    check_count(strings, max_values, field=what, what="JSON strings (pairs of quotes)")
    # The possessive pattern never backtracks: linear, and at most strings + 1 matches.
    skeleton = _JSON_STRING.sub("", raw.decode("latin-1"))
    brackets = skeleton.encode("latin-1").translate(None, _NOT_BRACKETS)
    del skeleton
    opened = brackets.count(b"[") + brackets.count(b"{")
    if 2 * opened != len(brackets):
        raise MalformedEvidence("not JSON: unbalanced brackets", field=what)
    deepest = max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)
    if deepest > max_depth:
        raise MalformedEvidence(
            f"nested more than {max_depth} levels deep", check=LIMIT_CHECK, field=what
        )


def _json_int(digits: str) -> int:
    """``int``, refusing long digit strings whatever the interpreter's own digit limit."""
    if len(digits.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise ValueError(f"integer of {len(digits)} characters, more than {MAX_JSON_INT_DIGITS}")
    return int(digits)


def require(obj: Mapping[str, Any], key: str, path: str) -> Any:
    """``obj[key]``, or a MalformedEvidence naming ``path.key``."""
    if key not in obj:
        raise MalformedEvidence("missing field", field=f"{path}.{key}" if path else key)
    return obj[key]


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
