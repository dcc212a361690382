"""The gateway contract's ABI (``contracts/artifacts.json``): call data, return values, reverts.

One module for every chain family and for ``gateway deploy``: calls are encoded from the compiled
ABI with eth-abi, never by hand, so adapters and contract cannot drift apart silently (a renamed
function fails here). Selectors are the chain's hash of the signature, Keccak-256 or SM3 on SM
chains, so every encoder takes the ``hasher``; ``seal()`` is ``verifier.messages.seal_call_data``.
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
from eth_utils.abi import abi_to_signature, get_abi_input_types, get_abi_output_types

from verifier.hashing import Hasher, keccak256
from verifier.messages import DeliveryResult, Message

ARTIFACTS: Final = Path(__file__).resolve().parents[1] / "contracts" / "artifacts.json"
GATEWAY: Final = "CrossChainGateway"
ANCHOR_CONTRACT: Final = "AuditAnchor"
"""The audit trail's anchoring contract (contracts/AuditAnchor.sol, relay/anchor.py)."""
_ERROR_STRING: Final = bytes.fromhex("08c379a0")  # Error(string)
_PANIC: Final = bytes.fromhex("4e487b71")  # Panic(uint256)


class OutputError(ValueError):
    """A call returned data that is not exactly its ABI's return values."""

    def __init__(self, message: str, *, name: str, cause: Exception | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.cause = cause


@functools.cache
def _contracts() -> dict[str, Any]:
    contracts: dict[str, Any] = json.loads(ARTIFACTS.read_text(encoding="utf-8"))["contracts"]
    return contracts


def artifact(contract: str = GATEWAY) -> dict[str, Any]:
    """``contract``'s compiled artifact (``abi``, ``bytecode``); ``LookupError`` when unusable."""
    try:
        art: dict[str, Any] = _contracts()[contract]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LookupError(f"{ARTIFACTS} has no usable {contract} ({exc!r})") from None
    return art


def contract_abi(contract: str = GATEWAY) -> tuple[dict[str, Any], ...]:
    return tuple(artifact(contract)["abi"])


def _function(name: str, contract: str) -> ABIFunction:
    abi = contract_abi(contract)
    found = [e for e in abi if e.get("type") == "function" and e.get("name") == name]
    if len(found) != 1:
        raise LookupError(f"{contract} has {len(found)} functions named {name}")
    return cast(ABIFunction, found[0])


def call_data(name: str, args: Sequence[Any], hasher: Hasher, *, contract: str = GATEWAY) -> bytes:
    """The call data of ``name(args)`` per ``contract``'s ABI, its selector under ``hasher``."""
    fn = _function(name, contract)
    selector = hasher(abi_to_signature(fn).encode())[:4]
    return selector + encode(get_abi_input_types(fn), list(args))


def decode_output(name: str, data: bytes, *, contract: str = GATEWAY) -> tuple[Any, ...]:
    """``name``'s return values; raises :class:`OutputError` for data that is not exactly that."""
    types = get_abi_output_types(_function(name, contract))
    try:
        values = tuple(decode(types, data))
    except Exception as exc:  # eth-abi's decoding errors have no common base
        raise OutputError(f"{name} returned undecodable data: {exc}", name=name, cause=exc) from exc
    if encode(types, list(values)) != data:
        raise OutputError(f"{name} returned non-canonical data", name=name)
    return values


def deploy_data(contract: str, args: Sequence[Any]) -> bytes:
    """``contract``'s creation code followed by its encoded constructor arguments."""
    art = artifact(contract)
    code = bytes.fromhex(str(art["bytecode"]).removeprefix("0x"))
    types: list[str] = []
    for entry in art["abi"]:
        if entry["type"] == "constructor":
            types = [str(i["type"]) for i in entry["inputs"]]
    return code + encode(types, list(args))


# ---------------------------------------------------------------------------------------------
# The gateway's calls


def _message_tuple(m: Message) -> tuple[Any, ...]:
    return (
        m.src_chain,
        m.src_gateway,
        m.dst_chain,
        m.nonce,
        m.sender,
        m.receiver,
        m.payload,
        m.timeout,
    )


def deliver_call(deliveries: Sequence[tuple[bytes, Message]], hasher: Hasher) -> bytes:
    """``deliverMessages(ids, messages)`` for (id, message) pairs."""
    ids = [message_id for message_id, _ in deliveries]
    messages = [_message_tuple(m) for _, m in deliveries]
    return call_data("deliverMessages", [ids, messages], hasher)


def acknowledge_call(results: Sequence[DeliveryResult], hasher: Hasher) -> bytes:
    """``acknowledgeResults(rows)``: (id, status, result) per delivery result."""
    rows = [(r.id, int(r.status), r.result) for r in results]
    return call_data("acknowledgeResults", [rows], hasher)


def send_message_call(
    dst_chain: str, receiver: bytes, payload: bytes, timeout: int, hasher: Hasher
) -> bytes:
    return call_data("sendMessage", [dst_chain, receiver, payload, timeout], hasher)


def requeue_call(seal_number: int, hasher: Hasher) -> bytes:
    return call_data("requeue", [seal_number], hasher)


def delivery_status_call(message_id: bytes, hasher: Hasher) -> bytes:
    """The view ``deliveryStatus(id)``: decode its output with ``decode_output``."""
    return call_data("deliveryStatus", [message_id], hasher)


def sent_state_call(message_id: bytes, hasher: Hasher) -> bytes:
    """The view ``sentState(id)``: 0 unknown, 1 pending, 2 acknowledged."""
    return call_data("sentState", [message_id], hasher)


def pending_call(hasher: Hasher) -> bytes:
    """The view ``pending()``: (sent ids, result hashes) waiting for a seal."""
    return call_data("pending", [], hasher)


# ---------------------------------------------------------------------------------------------
# Reverts


@functools.cache
def _errors(hasher: Hasher) -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {}
    for entry in contract_abi():
        if entry.get("type") == "error":
            error = cast(ABIError, entry)
            signature = abi_to_signature(error)
            table[hasher(signature.encode())[:4]] = (error["name"], get_abi_input_types(error))
    return table


def revert_reason(data: bytes | None, hasher: Hasher = keccak256) -> str:
    """A readable revert reason: Error(string), Panic(code) or the gateway's custom error.

    ``Error`` and ``Panic`` have fixed selectors (Solidity's, Keccak-256); the gateway's custom
    errors are selected under ``hasher``.
    """
    if not data:
        return "reverted without a reason"
    selector, body = data[:4], data[4:]
    errors = _errors(hasher)
    try:
        if selector == _ERROR_STRING:
            return str(decode(["string"], body)[0])
        if selector == _PANIC:
            return f"Panic(0x{decode(['uint256'], body)[0]:x})"
        if selector in errors:
            name, types = errors[selector]
            values = decode(types, body)
            return f"{name}({', '.join(_show(v) for v in values)})"
    except DecodingError:
        pass
    return f"reverted with data 0x{data.hex()[:200]}"


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)
