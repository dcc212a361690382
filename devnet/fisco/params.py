"""Positional parameters read the way the node's jsoncpp accessors read them.

A missing parameter is JSON null. String parameters go through ``JsonRpcInterface::toView``
(``Value::getString``), so anything but a JSON string reads as ``""``. The request envelope uses
``asString``; numbers and flags use ``asInt64``/``asBool``, whose LogicError the node answers
with -32600 and the error's text.
"""

from __future__ import annotations

from typing import Any

from devnet.fisco.errors import INVALID_REQUEST, RpcError

_INT64_MIN = -(2**63)
_INT64_END = 2**63
_UINT64_END = 2**64


def _get(params: list[Any], index: int) -> Any:
    return params[index] if index < len(params) else None


def as_str(params: list[Any], index: int) -> str:
    """``toView(req[index])``: the string, or ``""`` for any other JSON type."""
    value = _get(params, index)
    return value if isinstance(value, str) else ""


def as_string(value: Any) -> str:
    """jsoncpp ``Value::asString``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise RpcError(INVALID_REQUEST, "Type is not convertible to string")


def as_bool(params: list[Any], index: int, default: bool = False) -> bool:
    if index >= len(params):
        return default
    value = params[index]
    if value is None:
        return False
    if isinstance(value, bool | int | float):
        return bool(value)
    raise RpcError(INVALID_REQUEST, "Value is not convertible to bool.")


def as_int64(params: list[Any], index: int) -> int:
    """jsoncpp ``Value::asInt64``; integer literals beyond UInt64 parse as doubles there."""
    value = _get(params, index)
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if _INT64_MIN <= value < _INT64_END:
            return value
        if _INT64_END <= value < _UINT64_END:
            raise RpcError(INVALID_REQUEST, "LargestUInt out of Int64 range")
        raise RpcError(INVALID_REQUEST, "double out of Int64 range")
    if isinstance(value, float):
        if -(2.0**63) <= value < 2.0**63:
            return int(value)
        raise RpcError(INVALID_REQUEST, "double out of Int64 range")
    raise RpcError(INVALID_REQUEST, "Value is not convertible to Int64.")


def decode_hex(text: str) -> bytes:
    """``JsonRpcImpl_2_0::decodeData`` for sendTransaction: even length, optional 0x."""
    if not text or len(text) % 2:
        raise RpcError(-1, "std::exception::what: Unexpect hex string\n")
    body = text[2:] if text.startswith("0x") else text
    try:
        return bytes.fromhex(body)
    except ValueError as exc:
        raise RpcError(-1, "std::exception::what: Unexpect hex string\n") from exc


def decode_call_data(text: str) -> bytes:
    """``decodeData`` outside sendTransaction's task: its exception text, code -32600.

    An empty or odd-length string is the runtime_error "Unexpect hex string"; a non-hex digit
    is boost's ``non_hex_input``, whose ``what()`` is ``std::exception``'s own.
    """
    if not text or len(text) % 2:
        raise RpcError(INVALID_REQUEST, "Unexpect hex string")
    return _unhex(text[2:] if text.startswith("0x") else text)


def _unhex(body: str) -> bytes:
    if not all(c in "0123456789abcdefABCDEF" for c in body):
        raise RpcError(INVALID_REQUEST, "std::exception")
    return bytes.fromhex(body)


def hash_param(text: str) -> bytes:
    """``HashType(text, FromHex)``: optional 0x, even length up to 64, right-aligned."""
    body = text[2:] if text.startswith("0x") else text
    if len(body) > 64 or len(body) % 2:
        raise RpcError(INVALID_REQUEST, "Invalid input string!")
    return _unhex(body).rjust(32, b"\x00")
