"""Message and result bodies from the gateway's ``MessageSent`` / ``MessageDelivered`` logs.

These logs are not evidence on FISCO BCOS (only a seal is); a body counts only when it hashes to
the id or result hash a seal committed, which the adapter checks here and the relay again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from adapters.fisco.evidence import hex_bytes
from verifier.errors import GatewayError
from verifier.events import decode_event, parse_event_abi
from verifier.hashing import Hasher
from verifier.messages import (
    MESSAGE_ACKNOWLEDGED_EVENT,
    MESSAGE_DELIVERED_EVENT,
    MESSAGE_SENT_EVENT,
    SEALED_EVENT,
    DeliveryResult,
    DeliveryStatus,
    Message,
    delivery_from_event,
    message_from_event,
    message_id,
    result_hash,
)
from verifier.types import DecodedLog

SENT_ABI: Final = parse_event_abi(MESSAGE_SENT_EVENT)
DELIVERED_ABI: Final = parse_event_abi(MESSAGE_DELIVERED_EVENT)
ACKNOWLEDGED_ABI: Final = parse_event_abi(MESSAGE_ACKNOWLEDGED_EVENT)
SEALED_ABI: Final = parse_event_abi(SEALED_EVENT)
CACHE_SIZE: Final = 20_000
"""Bodies kept that no seal has taken yet (sent but not sealed, oldest dropped first)."""
CACHE_BYTES: Final = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LogPosition:
    """Where a ``getLogs`` entry says a log is."""

    height: int
    tx_index: int
    log_index: int
    block_hash: str
    tx_hash: str

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.height, self.tx_index, self.log_index)


@dataclass(frozen=True, slots=True)
class SentBody:
    id: bytes
    message: Message
    at: LogPosition


@dataclass(frozen=True, slots=True)
class ResultBody:
    result_hash: bytes
    result: DeliveryResult
    src_chain: str
    at: LogPosition


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value.startswith("0x") else int(value)
        except ValueError:
            return None
    return None


def parse_entry(entry: object, gateway: bytes) -> DecodedLog | None:
    """A log entry (of ``getLogs`` or a receipt) of ``gateway``; None when malformed or of
    another address."""
    if not isinstance(entry, dict):
        return None
    address = hex_bytes(entry.get("address"))
    data = hex_bytes(entry.get("data"))
    raw_topics = entry.get("topics")
    if address != gateway or data is None or not isinstance(raw_topics, list) or not raw_topics:
        return None
    topics = [hex_bytes(t) for t in raw_topics]
    if any(t is None or len(t) != 32 for t in topics):
        return None
    return DecodedLog(address=address, topics=tuple(t for t in topics if t is not None), data=data)


def parse_log(entry: object, gateway: bytes) -> tuple[DecodedLog, LogPosition] | None:
    """A ``getLogs`` entry of ``gateway``; None when malformed or of another address."""
    log = parse_entry(entry, gateway)
    if log is None or not isinstance(entry, dict):
        return None
    numbers = [_int(entry.get(k)) for k in ("blockNumber", "transactionIndex", "logIndex")]
    block_hash, tx_hash = entry.get("blockHash"), entry.get("transactionHash")
    if any(n is None for n in numbers):
        return None
    if not isinstance(block_hash, str) or not isinstance(tx_hash, str):
        return None
    height, tx_index, log_index = (n if n is not None else 0 for n in numbers)
    return log, LogPosition(height, tx_index, log_index, block_hash, tx_hash.lower())


Body = SentBody | ResultBody


def body_size(body: Body) -> int:
    """Roughly the bytes a body holds (its payload or result, plus fixed fields)."""
    data = body.message.payload if isinstance(body, SentBody) else body.result.result
    return len(data) + 512


class BodyIndex:
    """Bodies of the gateway seen and not sealed yet, by id and result hash, bounded.

    Only bodies that hash to their key are kept. A seal takes its entries' bodies
    out (each entry is sealed once; a requeued one is looked up again), so the index holds the
    queue the chain has not sealed yet; past ``capacity`` entries or ``max_bytes`` the oldest
    are dropped, which costs a lookup later, never a failed page.
    """

    def __init__(
        self,
        chain: str,
        gateway: bytes,
        hasher: Hasher,
        *,
        capacity: int = CACHE_SIZE,
        max_bytes: int = CACHE_BYTES,
    ) -> None:
        self.chain, self.gateway, self.hasher = chain, gateway, hasher
        self.capacity, self.max_bytes = capacity, max_bytes
        self._bodies: OrderedDict[bytes, Body] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._bodies)

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def add(self, log: DecodedLog, at: LogPosition) -> None:
        body = decode_body(log, at, self.chain, self.gateway, self.hasher)
        if body is None or body_key(body) in self._bodies:
            return
        self._bodies[body_key(body)] = body
        self._bytes += body_size(body)
        while self._bodies and (len(self._bodies) > self.capacity or self._bytes > self.max_bytes):
            _, dropped = self._bodies.popitem(last=False)
            self._bytes -= body_size(dropped)

    def take(self, key: bytes) -> Body | None:
        """The body of ``key`` (an id or a result hash), removed from the index."""
        body = self._bodies.pop(key, None)
        if body is not None:
            self._bytes -= body_size(body)
        return body


def body_key(body: Body) -> bytes:
    return body.id if isinstance(body, SentBody) else body.result_hash


def decode_body(
    log: DecodedLog, at: LogPosition, chain: str, gateway: bytes, hasher: Hasher
) -> Body | None:
    """The ``MessageSent`` / ``MessageDelivered`` body of ``log`` when it hashes to its key."""
    topic0 = log.topics[0]
    try:
        if topic0 == SENT_ABI.topic0(hasher):
            claimed, message = message_from_event(decode_event(log, SENT_ABI, hasher), gateway)
            if message.src_chain == chain and message_id(message, hasher) == claimed:
                return SentBody(claimed, message, at)
        elif topic0 == DELIVERED_ABI.topic0(hasher):
            event = decode_event(log, DELIVERED_ABI, hasher)
            claimed, src_chain, result = delivery_from_event(event, chain, gateway)
            if result_hash(result, hasher) == claimed:
                return ResultBody(claimed, result, src_chain, at)
    except GatewayError:
        return None  # not the gateway's event encoding: never a body
    return None


def decode_ack(log: DecodedLog, hasher: Hasher) -> tuple[bytes, DeliveryStatus] | None:
    """(id, status) of a ``MessageAcknowledged`` log; None when it is not one."""
    try:
        args = dict(decode_event(log, ACKNOWLEDGED_ABI, hasher).args)
        return bytes(args["id"]), DeliveryStatus(args["status"])
    except (GatewayError, ValueError):
        return None
