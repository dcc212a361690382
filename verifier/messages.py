"""Cross-chain messages, delivery results and seals: their ids, hashes and events.

The gateway contract (``contracts/CrossChainGateway.sol``, docs/contracts.md) and this module
compute the same values; a test runs both on each chain family. Every hash uses the hash function
of the chain that made the value: a message id is hashed by the source chain (Keccak-256, or SM3
on an SM chain), a result hash by the destination chain.

- message id  = H_src(abi.encode(string srcChain, address srcGateway, string dstChain,
  uint64 nonce, address sender, address receiver, bytes32 H_src(payload), uint64 timeout))
- result hash = H_dst(abi.encode(bytes32 id, string dstChain, address dstGateway, uint8 status,
  bytes32 H_dst(result)))

Both bind the gateway contracts as well as the chain names (relay-protocol requirement 3), so a
look-alike contract on the same chain can never produce an id or result hash the real one would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from eth_abi.abi import encode

from verifier.errors import MalformedEvidence
from verifier.events import DecodedEvent
from verifier.hashing import Hasher

CHAIN_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
"""A chain name: 1 to 32 of lowercase letters, digits and ``-``, not starting with ``-``."""

MAX_UINT64: Final = (1 << 64) - 1


class DeliveryStatus(IntEnum):
    """What the destination gateway recorded for a message (``deliveryStatus`` on chain)."""

    SUCCESS = 1
    FAILED = 2
    """The receiver reverted, ran out of its gas allowance, or has no code."""
    EXPIRED = 3
    """The destination chain's time had reached the timeout: the receiver was not called."""


@dataclass(frozen=True, slots=True)
class Message:
    """A cross-chain message as the source gateway recorded it."""

    src_chain: str
    src_gateway: bytes
    dst_chain: str
    nonce: int
    sender: bytes
    receiver: bytes
    payload: bytes
    timeout: int
    """Destination-chain time, in seconds, from which the message expires."""

    def __post_init__(self) -> None:
        for name in ("src_chain", "dst_chain"):
            check_chain_name(getattr(self, name), name)
        for name in ("src_gateway", "sender", "receiver"):
            if len(getattr(self, name)) != 20:
                raise MalformedEvidence("an address is 20 bytes", field=name)
        for name in ("nonce", "timeout"):
            if not 0 <= getattr(self, name) <= MAX_UINT64:
                raise MalformedEvidence("not a uint64", field=name)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """A destination gateway's verdict on one message."""

    id: bytes
    dst_chain: str
    dst_gateway: bytes
    status: DeliveryStatus
    result: bytes
    """The receiver's return or revert data, at most the contract's cap; empty when expired."""


@dataclass(frozen=True, slots=True)
class Seal:
    """A ``Sealed`` event: what a ``seal()`` transaction committed, in queue order."""

    number: int
    sent_ids: tuple[bytes, ...]
    result_hashes: tuple[bytes, ...]


def check_chain_name(name: object, field: str = "chain") -> str:
    if not isinstance(name, str) or CHAIN_NAME.fullmatch(name) is None:
        raise MalformedEvidence(
            f"{name!r} is not a chain name (1-32 of a-z, 0-9 and '-', not starting with '-')",
            field=field,
        )
    return name


def message_id(message: Message, hasher: Hasher) -> bytes:
    """The id the source gateway assigns; ``hasher`` is the source chain's hash function."""
    m = message
    return hasher(
        encode(
            ["string", "address", "string", "uint64", "address", "address", "bytes32", "uint64"],
            [
                m.src_chain,
                m.src_gateway,
                m.dst_chain,
                m.nonce,
                m.sender,
                m.receiver,
                hasher(m.payload),
                m.timeout,
            ],
        )
    )


def result_hash(result: DeliveryResult, hasher: Hasher) -> bytes:
    """The hash the destination gateway seals; ``hasher`` is the destination chain's."""
    r = result
    return hasher(
        encode(
            ["bytes32", "string", "address", "uint8", "bytes32"],
            [r.id, r.dst_chain, r.dst_gateway, int(r.status), hasher(r.result)],
        )
    )


def _event(name: str, *inputs: tuple[str, str, bool]) -> dict[str, Any]:
    return {
        "type": "event",
        "name": name,
        "anonymous": False,
        "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs],
    }


MESSAGE_SENT_EVENT: Final = _event(
    "MessageSent",
    ("id", "bytes32", True),
    ("srcChain", "string", False),
    ("dstChain", "string", False),
    ("nonce", "uint64", False),
    ("sender", "address", False),
    ("receiver", "address", False),
    ("payload", "bytes", False),
    ("timeout", "uint64", False),
)
MESSAGE_DELIVERED_EVENT: Final = _event(
    "MessageDelivered",
    ("id", "bytes32", True),
    ("resultHash", "bytes32", True),
    ("srcChain", "string", False),
    ("status", "uint8", False),
    ("result", "bytes", False),
)
MESSAGE_ACKNOWLEDGED_EVENT: Final = _event(
    "MessageAcknowledged",
    ("id", "bytes32", True),
    ("status", "uint8", False),
)
SEALED_EVENT: Final = _event(
    "Sealed",
    ("sealNumber", "uint64", True),
    ("sentIds", "bytes32[]", False),
    ("resultHashes", "bytes32[]", False),
)
SEAL_SIGNATURE: Final = "seal()"
"""The only call whose log is evidence on FISCO BCOS (docs/contracts.md)."""


def seal_call_data(hasher: Hasher) -> bytes:
    """``seal()``'s call data: its 4-byte selector under the chain's hash (SM3 on SM chains)."""
    return hasher(SEAL_SIGNATURE.encode())[:4]


def _args(event: DecodedEvent, expected: str) -> dict[str, Any]:
    name = event.signature.split("(", 1)[0]
    if name != expected:
        raise MalformedEvidence(
            f"expected a {expected} event, got {event.signature}", field="event"
        )
    return dict(event.args)


def _address(value: Any) -> bytes:
    text = str(value)
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def message_from_event(event: DecodedEvent, src_gateway: bytes) -> tuple[bytes, Message]:
    """The (claimed id, message) a ``MessageSent`` event states; the caller checks the id."""
    a = _args(event, "MessageSent")
    message = Message(
        src_chain=a["srcChain"],
        src_gateway=src_gateway,
        dst_chain=a["dstChain"],
        nonce=a["nonce"],
        sender=_address(a["sender"]),
        receiver=_address(a["receiver"]),
        payload=bytes(a["payload"]),
        timeout=a["timeout"],
    )
    return bytes(a["id"]), message


def delivery_from_event(
    event: DecodedEvent, dst_chain: str, dst_gateway: bytes
) -> tuple[bytes, str, DeliveryResult]:
    """The (claimed result hash, source chain, result) a ``MessageDelivered`` event states."""
    a = _args(event, "MessageDelivered")
    try:
        status = DeliveryStatus(a["status"])
    except ValueError:
        raise MalformedEvidence(f"unknown delivery status {a['status']}", field="status") from None
    result = DeliveryResult(
        id=bytes(a["id"]),
        dst_chain=dst_chain,
        dst_gateway=dst_gateway,
        status=status,
        result=bytes(a["result"]),
    )
    return bytes(a["resultHash"]), check_chain_name(a["srcChain"], "srcChain"), result


def seal_from_event(event: DecodedEvent) -> Seal:
    a = _args(event, "Sealed")
    return Seal(
        number=a["sealNumber"],
        sent_ids=tuple(bytes(x) for x in a["sentIds"]),
        result_hashes=tuple(bytes(x) for x in a["resultHashes"]),
    )
