"""The gateway contract's ABI (``contracts/artifacts.json``): call data, return values, reverts.

Calls are encoded from the compiled ABI with eth-abi, never by hand, so the adapter and the
contract cannot drift apart silently: a renamed function fails at load time.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, cast

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_typing import ABIError, ABIFunction
from eth_utils.abi import (
    abi_to_signature,
    function_abi_to_4byte_selector,
    get_abi_input_types,
    get_abi_output_types,
)

from verifier.hashing import keccak256

ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "contracts" / "artifacts.json"
GATEWAY: Final = "CrossChainGateway"
_ERROR_STRING: Final = bytes.fromhex("08c379a0")  # Error(string)
_PANIC: Final = bytes.fromhex("4e487b71")  # Panic(uint256)


@functools.cache
def gateway_abi() -> tuple[dict[str, Any], ...]:
    document = json.loads(ARTIFACTS.read_text(encoding="utf-8"))
    return tuple(document["contracts"][GATEWAY]["abi"])


def _function(name: str) -> ABIFunction:
    found = [e for e in gateway_abi() if e.get("type") == "function" and e.get("name") == name]
    if len(found) != 1:
        raise LookupError(f"{GATEWAY} has {len(found)} functions named {name}")
    return cast(ABIFunction, found[0])


def call_data(name: str, args: Sequence[Any]) -> bytes:
    """The call data of ``name(args)`` per the gateway's ABI."""
    fn = _function(name)
    return bytes(function_abi_to_4byte_selector(fn)) + encode(get_abi_input_types(fn), list(args))


def decode_output(name: str, data: bytes) -> tuple[Any, ...]:
    """``name``'s return values; raises ``ValueError`` for data that is not exactly that."""
    types = get_abi_output_types(_function(name))
    try:
        values = tuple(decode(types, data))
    except DecodingError as exc:
        raise ValueError(f"{name} returned undecodable data: {exc}") from exc
    if encode(types, list(values)) != data:
        raise ValueError(f"{name} returned non-canonical data")
    return values


@functools.cache
def _errors() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {}
    for entry in gateway_abi():
        if entry.get("type") == "error":
            error = cast(ABIError, entry)
            signature = abi_to_signature(error)
            table[keccak256(signature.encode())[:4]] = (error["name"], get_abi_input_types(error))
    return table


def revert_reason(data: bytes | None) -> str:
    """A readable revert reason: Error(string), Panic(code) or the gateway's custom error."""
    if not data:
        return "reverted without a reason"
    selector, body = data[:4], data[4:]
    try:
        if selector == _ERROR_STRING:
            return str(decode(["string"], body)[0])
        if selector == _PANIC:
            return f"Panic(0x{decode(['uint256'], body)[0]:x})"
        if selector in _errors():
            name, types = _errors()[selector]
            values = decode(types, body)
            return f"{name}({', '.join(_show(v) for v in values)})"
    except DecodingError:
        pass
    return f"reverted with data 0x{data.hex()[:200]}"


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)
