"""Message and result bodies from the gateway's ``MessageSent`` / ``MessageDelivered`` logs.

These logs are not evidence on FISCO BCOS (only a seal is); a body counts only when it hashes to
the id or result hash a seal committed, which the adapter checks here and the relay again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

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


class BodyIndex:
    """Bodies seen, by id and result hash; only bodies that hash to their key are kept."""

    def __init__(self, chain: str, gateway: bytes, hasher: Hasher) -> None:
        self.chain, self.gateway, self.hasher = chain, gateway, hasher
        self.sent: OrderedDict[bytes, SentBody] = OrderedDict()
        self.results: OrderedDict[bytes, ResultBody] = OrderedDict()

    def add(self, log: DecodedLog, at: LogPosition) -> None:
        topic0 = log.topics[0]
        try:
            if topic0 == SENT_ABI.topic0(self.hasher):
                self._add_sent(log, at)
            elif topic0 == DELIVERED_ABI.topic0(self.hasher):
                self._add_result(log, at)
        except GatewayError:
            return  # not the gateway's event encoding: never a body

    def _add_sent(self, log: DecodedLog, at: LogPosition) -> None:
        claimed, message = message_from_event(
            decode_event(log, SENT_ABI, self.hasher), self.gateway
        )
        if message.src_chain != self.chain or message_id(message, self.hasher) != claimed:
            return
        if claimed not in self.sent:
            self.sent[claimed] = SentBody(claimed, message, at)
            _trim(self.sent)

    def _add_result(self, log: DecodedLog, at: LogPosition) -> None:
        event = decode_event(log, DELIVERED_ABI, self.hasher)
        claimed, src_chain, result = delivery_from_event(event, self.chain, self.gateway)
        if result_hash(result, self.hasher) != claimed:
            return
        if claimed not in self.results:
            self.results[claimed] = ResultBody(claimed, result, src_chain, at)
            _trim(self.results)


def _trim(cache: OrderedDict[bytes, Any]) -> None:
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)


def decode_ack(log: DecodedLog, hasher: Hasher) -> tuple[bytes, DeliveryStatus] | None:
    """(id, status) of a ``MessageAcknowledged`` log; None when it is not one."""
    try:
        args = dict(decode_event(log, ACKNOWLEDGED_ABI, hasher).args)
        return bytes(args["id"]), DeliveryStatus(args["status"])
    except (GatewayError, ValueError):
        return None
