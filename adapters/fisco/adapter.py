"""FiscoAdapter: the gateway contract on a FISCO BCOS 3.x chain (PBFT: committed is final).

Observing: ``getLogs`` of the gateway over committed blocks from the cursor. On FISCO only a
``seal()`` is evidence; for each seal transaction that is exactly the configured gateway's
direct, successful ``seal()`` (``evidence.seal_call_problem``) the adapter reports one fact per
sealed entry, with the seal's bundle as evidence: ``message_sent`` for each sent id whose
``MessageSent`` body hashes to it, ``delivery_result`` for each result hash whose
``MessageDelivered`` body hashes to it. Bodies may lie in any earlier block (requeued entries
long before): those not seen on the way are looked up by their indexed id or result hash, newest
blocks first. ``MessageAcknowledged`` logs of successful transactions are reported without
evidence.

The cursor is ``{"v": 1, "next": <height>}``: a page covers whole blocks, so a restart neither
misses nor repeats a fact; a failed page is read again whole, from another endpoint.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

import structlog

from adapters.base import (
    ChainAdapter,
    ChainStatus,
    ConfigurationError,
    Cursor,
    Evidence,
    Fact,
    FactKind,
    FactPage,
    Submission,
    UnexpectedResponse,
)
from adapters.fisco.bodies import (
    ACKNOWLEDGED_ABI,
    DELIVERED_ABI,
    SEALED_ABI,
    SENT_ABI,
    BodyIndex,
    LogPosition,
    decode_ack,
    parse_entry,
    parse_log,
)
from adapters.fisco.evidence import SealEvidence, fetch_seal_evidence, hex_bytes
from adapters.fisco.rpc import EndpointPool, FiscoRpcClient
from adapters.fisco.settings import FiscoSettings
from adapters.fisco.submit import Submitter
from adapters.gateway_abi import (
    acknowledge_call,
    call_data,
    decode_output,
    deliver_call,
    delivery_status_call,
    pending_call,
    requeue_call,
    send_message_call,
    sent_state_call,
)
from verifier.hashing import hasher_for
from verifier.messages import DeliveryResult, DeliveryStatus, Message, seal_call_data
from verifier.types import DecodedLog

log = structlog.get_logger(__name__)

CURSOR_VERSION: Final = 1


class FiscoAdapter(ChainAdapter):
    def __init__(self, settings: FiscoSettings) -> None:
        self.settings = settings
        self.chain = settings.chain
        self.hasher = hasher_for(settings.crypto.hash_scheme)
        self.pool = EndpointPool(settings)
        self._submitter = Submitter(settings, self.pool)
        self._bodies = BodyIndex(settings.chain, settings.gateway, self.hasher)
        self._topics = {
            abi.name: abi.topic0(self.hasher)
            for abi in (SENT_ABI, DELIVERED_ABI, ACKNOWLEDGED_ABI, SEALED_ABI)
        }
        self._last_seal: tuple[int, float] | None = None
        """(height, monotonic time) of this adapter's latest seal."""
        self._checked = False
        self._check_lock = asyncio.Lock()

    async def _ready(self) -> None:
        """First use: the gateway has code and its ``chainName()`` is ``settings.chain``;
        otherwise ConfigurationError (a wrong address or chain would observe nothing, or
        report another chain's facts under this name)."""
        if self._checked:
            return
        async with self._check_lock:
            if self._checked:
                return
            address = self.settings.gateway_hex
            code = await self.pool.call("getCode", address)
            if not isinstance(code, str) or hex_bytes(code) in (None, b""):
                raise ConfigurationError(
                    f"the gateway at {address} has no code (getCode: {str(code)[:20]!r})",
                    chain=self.chain,
                )
            data = "0x" + call_data("chainName", [], self.hasher).hex()
            answer = await self.pool.call("call", address, data)
            output = answer.get("output") if isinstance(answer, dict) else None
            try:
                if not isinstance(answer, dict) or answer.get("status") != 0:
                    raise ValueError(f"status {answer.get('status') if answer else answer}")
                (name,) = decode_output("chainName", hex_bytes(output) or b"")
            except ValueError as exc:
                raise ConfigurationError(
                    f"the contract at {address} does not answer chainName() as the gateway "
                    f"does ({str(exc)[:80]})",
                    chain=self.chain,
                ) from None
            if name != self.chain:
                raise ConfigurationError(
                    f"the gateway at {address} says its chain is {str(name)[:40]!r}, "
                    f"the configuration says {self.chain!r}",
                    chain=self.chain,
                )
            self._checked = True

    # ------------------------------------------------------------------------------- cursor

    def initial_cursor(self, height: int = 0) -> Cursor:
        return json.dumps({"v": CURSOR_VERSION, "next": max(height, 0)})

    def _parse_cursor(self, cursor: Cursor) -> int:
        try:
            state = json.loads(cursor)
            height = state["next"]
            ok = state.get("v") == CURSOR_VERSION and isinstance(height, int) and height >= 0
        except (ValueError, TypeError, KeyError, AttributeError):
            ok = False
        if not ok:
            raise ConfigurationError(f"not a FISCO cursor: {cursor[:80]!r}", chain=self.chain)
        return int(height)

    # ------------------------------------------------------------------------------- observe

    async def facts(self, cursor: Cursor, *, max_blocks: int = 1000) -> FactPage:
        start = self._parse_cursor(cursor)
        await self._ready()

        async def page(client: FiscoRpcClient) -> FactPage:
            head = _int(await client.call("getBlockNumber"), client, "getBlockNumber")
            if start > head:
                return FactPage((), cursor, head)
            end = min(head, start + max(max_blocks, 1) - 1)
            facts = await self._read(client, start, end)
            log.info(
                "facts_read",
                chain=self.chain,
                endpoint=client.name,
                start=start,
                end=end,
                facts=len(facts),
            )
            return FactPage(tuple(facts), self.initial_cursor(end + 1), head)

        return await self.pool.run(page)

    async def _read(self, client: FiscoRpcClient, start: int, end: int) -> list[Fact]:
        entries = await self._logs(client, start, end, [])
        logs: list[tuple[DecodedLog, LogPosition]] = []
        for entry in entries:
            parsed = parse_log(entry, self.settings.gateway)
            if parsed is not None and start <= parsed[1].height <= end:
                logs.append(parsed)
                self._bodies.add(*parsed)
        logs.sort(key=lambda item: item[1].order)
        facts: list[Fact] = []
        seen_txs: set[str] = set()
        for decoded, at in logs:
            topic0 = decoded.topics[0]
            if topic0 == self._topics["Sealed"] and at.tx_hash not in seen_txs:
                seen_txs.add(at.tx_hash)
                facts.extend(await self._seal_facts(client, at))
            elif topic0 == self._topics["MessageAcknowledged"]:
                fact = await self._ack_fact(client, decoded, at)
                if fact is not None:
                    facts.append(fact)
        return facts

    async def _logs(
        self, client: FiscoRpcClient, start: int, end: int, topics: list[Any]
    ) -> list[Any]:
        out: list[Any] = []
        step = self.settings.block_range
        for lo in range(start, end + 1, step):
            query = {
                "fromBlock": hex(lo),
                "toBlock": hex(min(end, lo + step - 1)),
                "address": [self.settings.gateway_hex],
                "topics": topics,
            }
            result = await client.request("getLogs", [self.settings.group_id, query])
            if not isinstance(result, list):
                raise UnexpectedResponse(
                    "getLogs is not a list", chain=self.chain, endpoint=client.name
                )
            out.extend(result)
        return out

    async def _seal_facts(self, client: FiscoRpcClient, at: LogPosition) -> list[Fact]:
        found = await fetch_seal_evidence(client, self.settings, self.hasher, at.tx_hash)
        if found is None:
            log.warning(
                "seal_refused",
                chain=self.chain,
                endpoint=client.name,
                tx_hash=at.tx_hash,
                height=at.height,
            )
            return []
        await self._find_bodies(client, found)
        evidence = Evidence(found.bundle, found.endpoint, found.seal.number)
        facts = []
        for key in found.seal.result_hashes:
            r = self._bodies.results[key]
            facts.append(
                self._fact(
                    FactKind.DELIVERY_RESULT,
                    r.at,
                    r.result.id,
                    client,
                    evidence,
                    result=r.result,
                    result_hash=key,
                    src_chain=r.src_chain,
                )
            )
        for key in found.seal.sent_ids:
            s = self._bodies.sent[key]
            facts.append(
                self._fact(FactKind.MESSAGE_SENT, s.at, key, client, evidence, message=s.message)
            )
        log.info(
            "seal_observed",
            chain=self.chain,
            seal_number=found.seal.number,
            height=found.height,
            sent=len(found.seal.sent_ids),
            results=len(found.seal.result_hashes),
        )
        return facts

    def _fact(
        self,
        kind: FactKind,
        at: LogPosition,
        id: bytes,
        client: FiscoRpcClient,
        evidence: Evidence | None,
        **extra: Any,
    ) -> Fact:
        return Fact(
            kind=kind,
            chain=self.chain,
            height=at.height,
            block_hash=at.block_hash,
            tx_hash=at.tx_hash,
            log_index=at.log_index,
            id=id,
            endpoint=client.name,
            evidence=evidence,
            **extra,
        )

    async def _find_bodies(self, client: FiscoRpcClient, found: SealEvidence) -> None:
        """Look up, newest blocks first, the bodies of sealed entries not seen yet."""

        def missing() -> tuple[list[bytes], list[bytes]]:
            return (
                [k for k in found.seal.sent_ids if k not in self._bodies.sent],
                [k for k in found.seal.result_hashes if k not in self._bodies.results],
            )

        sent, results = missing()
        hi = found.height
        while (sent or results) and hi >= 0:
            lo = max(0, hi - self.settings.block_range + 1)
            queries: list[list[Any]] = []
            if sent:
                queries.append(
                    [["0x" + self._topics["MessageSent"].hex()], ["0x" + k.hex() for k in sent]]
                )
            if results:
                queries.append(
                    [
                        ["0x" + self._topics["MessageDelivered"].hex()],
                        None,
                        ["0x" + k.hex() for k in results],
                    ]
                )
            for topics in queries:
                for entry in await self._logs(client, lo, hi, topics):
                    parsed = parse_log(entry, self.settings.gateway)
                    if parsed is not None:
                        self._bodies.add(*parsed)
            sent, results = missing()
            hi = lo - 1
        if sent or results:
            first = (sent or results)[0].hex()
            raise UnexpectedResponse(
                f"seal {found.seal.number}: no body that hashes to sealed entry 0x{first}",
                chain=self.chain,
                endpoint=client.name,
            )

    async def _ack_fact(
        self, client: FiscoRpcClient, decoded: DecodedLog, at: LogPosition
    ) -> Fact | None:
        ack = decode_ack(decoded, self.hasher)
        if ack is None:
            return None
        receipt = await client.call("getTransactionReceipt", at.tx_hash, False)
        if not isinstance(receipt, dict) or receipt.get("status") != 0:
            return None  # never from a failed transaction
        logs = receipt.get("logEntries")
        wanted = {
            "address": self.settings.gateway.hex(),
            "data": "0x" + decoded.data.hex(),
            "topics": ["0x" + t.hex() for t in decoded.topics],
        }
        if not isinstance(logs, list) or not any(_same_log(e, wanted) for e in logs):
            return None
        return self._fact(FactKind.ACKNOWLEDGED, at, ack[0], client, None, ack_status=ack[1])

    async def refetch(self, fact: Fact, *, avoid: frozenset[str]) -> Fact:
        await self._ready()
        if fact.evidence is None:
            return fact
        tx = fact.evidence.bundle.get("transaction")
        tx_hash = tx.get("hash") if isinstance(tx, dict) else None
        if not isinstance(tx_hash, str):
            raise UnexpectedResponse("the fact's evidence names no transaction", chain=self.chain)
        key = fact.result_hash if fact.kind is FactKind.DELIVERY_RESULT else fact.id

        async def again(client: FiscoRpcClient) -> Fact:
            found = await fetch_seal_evidence(client, self.settings, self.hasher, tx_hash)
            if found is None or key not in (*found.seal.sent_ids, *found.seal.result_hashes):
                raise UnexpectedResponse(
                    f"{tx_hash} is not a seal of this entry here",
                    chain=self.chain,
                    endpoint=client.name,
                )
            evidence = Evidence(found.bundle, found.endpoint, found.seal.number)
            return replace(fact, evidence=evidence, endpoint=client.name)

        return await self.pool.run(again, avoid=avoid)

    async def status(self) -> ChainStatus:
        await self._ready()

        async def read(client: FiscoRpcClient) -> ChainStatus:
            head = _int(await client.call("getBlockNumber"), client, "getBlockNumber")
            block = await client.call("getBlockByNumber", head, True, True)
            stamp = _int(
                block.get("timestamp") if isinstance(block, dict) else None, client, "timestamp"
            )
            return ChainStatus(self.chain, head, head, stamp // 1000)

        status = await self.pool.run(read)
        return replace(status, endpoints=self.pool.health())

    # ------------------------------------------------------------------------------- submit

    async def send_message(
        self, dst_chain: str, receiver: bytes, payload: bytes, timeout: int
    ) -> tuple[bytes, Submission]:
        await self._ready()
        data = send_message_call(dst_chain, receiver, payload, timeout, self.hasher)
        receipt, submission = await self._submitter.submit(
            self.settings.sender_key, data, "sendMessage"
        )
        entries = receipt.get("logEntries")
        if not isinstance(entries, list):
            entries = []
        for entry in entries:
            sent = parse_entry(entry, self.settings.gateway)
            topics = () if sent is None else sent.topics
            if len(topics) == 2 and topics[0] == self._topics["MessageSent"]:
                return topics[1], submission
        raise UnexpectedResponse(
            f"sendMessage receipt of {submission.tx_hash} holds no MessageSent of the gateway",
            chain=self.chain,
            endpoint=submission.endpoint,
        )

    async def deliver(self, deliveries: Sequence[tuple[bytes, Message]]) -> Submission:
        await self._ready()
        data = deliver_call(deliveries, self.hasher)
        return (await self._submitter.submit(self.settings.relayer_key, data, "deliverMessages"))[1]

    async def acknowledge(self, results: Sequence[DeliveryResult]) -> Submission:
        await self._ready()
        data = acknowledge_call(results, self.hasher)
        return (
            await self._submitter.submit(self.settings.relayer_key, data, "acknowledgeResults")
        )[1]

    async def seal(self, *, force: bool = False) -> Submission | None:
        await self._ready()
        sent, results = await self._view("pending", pending_call(self.hasher))
        pending = sent + results
        if pending == 0:
            return None
        if not force and pending < self.settings.seal_batch and self._last_seal is not None:
            height, when = self._last_seal
            head = await self.pool.call("getBlockNumber")
            waited = time.monotonic() - when
            if head <= height and waited < self.settings.seal_interval:
                return None
        _, submission = await self._submitter.submit(
            self.settings.relayer_key, seal_call_data(self.hasher), "seal"
        )
        self._last_seal = (submission.height, time.monotonic())
        return submission

    async def requeue(self, seal_number: int) -> Submission:
        await self._ready()
        data = requeue_call(seal_number, self.hasher)
        return (await self._submitter.submit(self.settings.relayer_key, data, "requeue"))[1]

    async def delivery_status(self, message_id: bytes) -> DeliveryStatus | None:
        await self._ready()
        (value,) = await self._view("deliveryStatus", delivery_status_call(message_id, self.hasher))
        return DeliveryStatus(value) if value else None

    async def sent_state(self, message_id: bytes) -> int:
        await self._ready()
        (value,) = await self._view("sentState", sent_state_call(message_id, self.hasher))
        return int(value)

    async def _view(self, name: str, data: bytes) -> tuple[Any, ...]:
        async def read(client: FiscoRpcClient) -> tuple[Any, ...]:
            answer = await client.call("call", self.settings.gateway_hex, "0x" + data.hex())
            output = answer.get("output") if isinstance(answer, dict) else None
            try:
                if answer.get("status") != 0 or not isinstance(output, str):
                    raise ValueError(f"status {answer.get('status')}")
                return decode_output(name, bytes.fromhex(output[2:]))
            except Exception as exc:  # a malformed answer has many shapes
                raise UnexpectedResponse(
                    f"{name}: {exc}", chain=self.chain, endpoint=client.name
                ) from exc

        return await self.pool.run(read)

    async def close(self) -> None:
        await self.pool.close()


def _int(value: object, client: FiscoRpcClient, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UnexpectedResponse(
            f"{what} is not a block number or time", chain=client.chain, endpoint=client.name
        )
    return value


def _same_log(entry: object, wanted: dict[str, Any]) -> bool:
    if not isinstance(entry, dict):
        return False
    topics = entry.get("topics")
    return (
        entry.get("address") == wanted["address"]
        and str(entry.get("data", "")).lower() == wanted["data"]
        and isinstance(topics, list)
        and [str(t).lower() for t in topics] == wanted["topics"]
    )
