"""Facts from one endpoint: the gateway's logs in final blocks, each with its evidence bundle.

``eth_getLogs`` (filtered by the gateway's address and the three event topics, in bounded
ranges) only says which blocks to look at. The facts themselves are read from the receipts of
those blocks, the same receipts the proofs are built from, so a fact and its evidence cannot
disagree; the two views must match (log count, block hash) or the endpoint is inconsistent.
Logs are decoded strictly (``verifier.events``); a ``MessageSent`` whose id is not the id of
the message it states is not reported.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Final

import structlog

from adapters.base import Evidence, Fact, FactKind, NotFound, UnexpectedResponse
from adapters.evm.proofs import BlockReceipts, build_block_receipts
from adapters.evm.rpc import EvmEndpoint, JsonRpcError, json_list, json_object, quantity
from adapters.evm.settings import EvmSettings
from verifier.errors import GatewayError
from verifier.events import EventAbi, decode_event, parse_event_abi
from verifier.evm.header import compute_block_hash
from verifier.hashing import keccak256
from verifier.messages import (
    MESSAGE_ACKNOWLEDGED_EVENT,
    MESSAGE_DELIVERED_EVENT,
    MESSAGE_SENT_EVENT,
    DeliveryStatus,
    delivery_from_event,
    message_from_event,
    message_id,
    result_hash,
)
from verifier.types import DecodedLog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Event:
    kind: FactKind
    abi: EventAbi
    entry: dict[str, Any]


_EVENTS: Final = {
    e.abi.topic0(keccak256): e
    for e in (
        _Event(FactKind.MESSAGE_SENT, parse_event_abi(MESSAGE_SENT_EVENT), MESSAGE_SENT_EVENT),
        _Event(
            FactKind.DELIVERY_RESULT,
            parse_event_abi(MESSAGE_DELIVERED_EVENT),
            MESSAGE_DELIVERED_EVENT,
        ),
        _Event(
            FactKind.ACKNOWLEDGED,
            parse_event_abi(MESSAGE_ACKNOWLEDGED_EVENT),
            MESSAGE_ACKNOWLEDGED_EVENT,
        ),
    )
}
TOPICS: Final = ["0x" + t.hex() for t in _EVENTS]


class FactReader:
    """Reads one endpoint's view of the gateway's facts."""

    def __init__(self, settings: EvmSettings) -> None:
        self.settings = settings
        self.gateway = "0x" + settings.gateway.hex()

    async def final_head(self, endpoint: EvmEndpoint) -> tuple[int, int]:
        """(head, final head) on ``endpoint``; with a finality tag, never ``latest`` instead."""
        s = self.settings
        head = quantity(await endpoint.call("eth_blockNumber", []), "eth_blockNumber", endpoint)
        if s.finality_tag is None:
            return head, max(head - s.confirmations, 0)
        try:
            block = await endpoint.call("eth_getBlockByNumber", [s.finality_tag, False])
        except JsonRpcError as exc:
            raise UnexpectedResponse(
                f"the endpoint cannot name its {s.finality_tag!r} block ({exc.reason}); "
                "it is never replaced by 'latest'",
                chain=s.chain,
                endpoint=endpoint.name,
            ) from exc
        if block is None:
            raise UnexpectedResponse(
                f"the endpoint has no {s.finality_tag!r} block; it is never replaced by 'latest'",
                chain=s.chain,
                endpoint=endpoint.name,
            )
        block = json_object(block, f"{s.finality_tag} block", endpoint)
        return head, quantity(block.get("number"), f"{s.finality_tag} number", endpoint)

    async def logs(self, endpoint: EvmEndpoint, start: int, end: int) -> dict[int, int]:
        """Blocks in [start, end] with gateway logs, and how many each holds."""
        counts: dict[int, int] = defaultdict(int)
        step = self.settings.log_range
        for low in range(start, end + 1, step):
            high = min(low + step - 1, end)
            query = {
                "fromBlock": hex(low),
                "toBlock": hex(high),
                "address": self.gateway,
                "topics": [TOPICS],
            }
            found = json_list(await endpoint.call("eth_getLogs", [query]), "eth_getLogs", endpoint)
            for raw in found:
                entry = json_object(raw, "log", endpoint)
                if entry.get("removed") is True:
                    continue
                if str(entry.get("address", "")).lower() != self.gateway:
                    continue  # the filter asked for the gateway only: never count another's log
                number = quantity(entry.get("blockNumber"), "log.blockNumber", endpoint)
                if not low <= number <= high:
                    raise UnexpectedResponse(
                        f"eth_getLogs [{low}, {high}] answered a log of block {number}",
                        chain=self.settings.chain,
                        endpoint=endpoint.name,
                    )
                counts[number] += 1
        return dict(sorted(counts.items()))

    async def header(self, endpoint: EvmEndpoint, number: int) -> dict[str, Any]:
        """Block ``number``'s header, its ``hash`` recomputed from its fields: an endpoint that
        alters a header field (and its receiptsRoot to match altered receipts) is caught here,
        naming it, instead of only by the relay's verification."""
        s = self.settings
        raw = await endpoint.call("eth_getBlockByNumber", [hex(number), False])
        if raw is None:
            raise NotFound(f"block {number} is unknown", chain=s.chain, endpoint=endpoint.name)
        header = json_object(raw, f"block {number}", endpoint)
        try:
            computed = "0x" + compute_block_hash(header).hex()
        except GatewayError as exc:
            raise UnexpectedResponse(
                f"block {number}: the header cannot be hashed ({exc})",
                chain=s.chain,
                endpoint=endpoint.name,
            ) from exc
        claimed = str(header.get("hash", "")).lower()
        if computed != claimed or header.get("number") != hex(number):
            raise UnexpectedResponse(
                f"block {number}: the header's fields hash to {computed}, not the hash "
                f"{claimed[:66]} it claims (or it is another block's)",
                chain=s.chain,
                endpoint=endpoint.name,
            )
        return header

    async def block(self, endpoint: EvmEndpoint, number: int) -> BlockReceipts:
        """Block ``number``'s header and all its receipts, consistent with each other."""
        s = self.settings
        header = await self.header(endpoint, number)
        try:
            receipts = json_list(
                await endpoint.call("eth_getBlockReceipts", [header.get("hash")]),
                "eth_getBlockReceipts",
                endpoint,
            )
        except JsonRpcError:
            receipts = await self._receipts_one_by_one(endpoint, header)
        return build_block_receipts(header, receipts, chain=s.chain, endpoint=endpoint.name)

    async def _receipts_one_by_one(
        self, endpoint: EvmEndpoint, header: dict[str, Any]
    ) -> list[Any]:
        receipts = []
        for tx_hash in json_list(header.get("transactions"), "block.transactions", endpoint):
            receipt = await endpoint.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is None:
                raise NotFound(
                    f"no receipt for {tx_hash}", chain=self.settings.chain, endpoint=endpoint.name
                )
            receipts.append(receipt)
        return receipts

    def facts(self, block: BlockReceipts, expected_logs: int | None = None) -> list[Fact]:
        """The block's facts in chain order; ``expected_logs`` is what eth_getLogs counted."""
        facts: list[Fact] = []
        seen = 0
        for index, receipt in enumerate(block.receipts):
            for position, entry in enumerate(receipt.get("logs") or []):
                topics = entry.get("topics") or []
                if str(entry.get("address", "")).lower() != self.gateway or not topics:
                    continue
                event = _EVENTS.get(bytes.fromhex(str(topics[0])[2:]))
                if event is None:
                    continue
                seen += 1
                if receipt.get("status") != "0x1":
                    continue  # a reverted transaction's logs are never facts
                fact = self._fact(block, index, position, entry, event)
                if fact is not None:
                    facts.append(fact)
        if expected_logs is not None and seen != expected_logs:
            raise UnexpectedResponse(
                f"block {block.number}: eth_getLogs counted {expected_logs} gateway logs, "
                f"its receipts hold {seen}",
                chain=self.settings.chain,
                endpoint=block.endpoint,
            )
        return facts

    def _fact(
        self,
        block: BlockReceipts,
        index: int,
        position: int,
        entry: dict[str, Any],
        event: _Event,
    ) -> Fact | None:
        s = self.settings
        receipt = block.receipts[index]
        where = {
            "chain": s.chain,
            "height": block.number,
            "tx_hash": receipt.get("transactionHash"),
            "log_index": position,
            "endpoint": block.endpoint,
        }
        try:
            decoded = decode_event(
                DecodedLog(
                    address=s.gateway,
                    topics=tuple(bytes.fromhex(str(t)[2:]) for t in entry["topics"]),
                    data=bytes.fromhex(str(entry["data"])[2:]),
                ),
                event.abi,
                keccak256,
            )
            fields = self._fields(event.kind, decoded)
        except (GatewayError, ValueError, KeyError) as exc:
            log.warning("gateway_log_skipped", reason=str(exc), **where)
            return None
        if fields is None:
            return None
        evidence = None
        if event.kind is not FactKind.ACKNOWLEDGED:
            bundle = block.bundle(index, position, chain=s.chain, event=copy.deepcopy(event.entry))
            evidence = Evidence(bundle=bundle, endpoint=block.endpoint)
        return Fact(
            kind=event.kind,
            chain=s.chain,
            height=block.number,
            block_hash=block.hash,
            tx_hash=str(receipt.get("transactionHash")),
            log_index=position,
            endpoint=block.endpoint,
            evidence=evidence,
            **fields,
        )

    def _fields(self, kind: FactKind, decoded: Any) -> dict[str, Any] | None:
        s = self.settings
        if kind is FactKind.MESSAGE_SENT:
            claimed, message = message_from_event(decoded, s.gateway)
            if message_id(message, keccak256) != claimed:
                log.error("message_id_mismatch", chain=s.chain, message_id="0x" + claimed.hex())
                return None
            if message.src_chain != s.chain:
                log.error("message_src_chain_mismatch", chain=s.chain, src_chain=message.src_chain)
                return None
            return {"id": claimed, "message": message}
        if kind is FactKind.DELIVERY_RESULT:
            claimed_hash, src_chain, result = delivery_from_event(decoded, s.chain, s.gateway)
            if result_hash(result, keccak256) != claimed_hash:
                log.error("result_hash_mismatch", chain=s.chain, message_id="0x" + result.id.hex())
                return None
            return {
                "id": result.id,
                "result": result,
                "result_hash": claimed_hash,
                "src_chain": src_chain,
            }
        args = dict(decoded.args)
        return {"id": bytes(args["id"]), "ack_status": DeliveryStatus(args["status"])}
