"""Positional parameters read the way the node's jsoncpp accessors read them.

A missing parameter is JSON null, which reads as ``""``, ``false`` or ``0``; a value of the wrong
type raises jsoncpp's LogicError, which the node answers with -32600 and the error's text.
"""

from __future__ import annotations

from typing import Any

from devnet.fisco.errors import INVALID_REQUEST, RpcError


def _get(params: list[Any], index: int) -> Any:
    return params[index] if index < len(params) else None


def as_str(params: list[Any], index: int) -> str:
    value = _get(params, index)
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
    value = _get(params, index)
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, float) and -(2.0**63) <= value < 2.0**63:
        return int(value)
    if isinstance(value, int | float):
        raise RpcError(INVALID_REQUEST, "Value is out of range for Int64.")
    raise RpcError(INVALID_REQUEST, "Value is not convertible to Int64.")


def decode_hex(text: str) -> bytes:
    """``JsonRpcImpl_2_0::decodeData``: even length, optional 0x."""
    if not text or len(text) % 2:
        raise RpcError(-1, "std::exception::what: Unexpect hex string\n")
    body = text[2:] if text.startswith("0x") else text
    try:
        return bytes.fromhex(body)
    except ValueError as exc:
        raise RpcError(-1, "std::exception::what: Unexpect hex string\n") from exc
