"""FiscoAdapter: the gateway contract on a FISCO BCOS 3.x chain (PBFT: committed is final).

Observing (``observe.PageReader``): ``getLogs`` of the gateway over committed blocks from the
cursor, in chain order. On FISCO only a ``seal()`` is evidence; for each seal transaction that
is exactly the configured gateway's direct, successful ``seal()``
(``evidence.seal_call_problem``) the adapter reports one fact per sealed entry, with the seal's
bundle as evidence: ``message_sent`` for each sent id whose ``MessageSent`` body hashes to it,
``delivery_result`` for each result hash whose ``MessageDelivered`` body hashes to it. Bodies
may lie in earlier blocks (requeued entries): those not held are looked up by their indexed id
or result hash, newest blocks first, up to ``body_lookback_blocks`` back. A genuine ``Sealed``
log whose transaction every endpoint serves as not exactly ``seal()`` is an ``unusable_seal``
fact (requeue it); served so by one endpoint only, or with a seal number skipped, it is that
endpoint's fault. ``MessageAcknowledged`` logs of successful transactions are reported without
evidence.

The cursor is ``{"v": 1, "next": <height>, "seal": <last seal number>}`` (``seal`` absent
until a seal is seen): a page covers whole blocks, so a restart neither misses nor repeats a
fact; a failed page is read again whole, from another endpoint. The first use checks that the
gateway has code and that its ``chainName()`` is the configured chain.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Sequence
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
    NotFound,
    Submission,
    UnexpectedResponse,
    agreed,
)
from adapters.fisco.bodies import BodyIndex, parse_entry
from adapters.fisco.evidence import SealEvidence, fetch_seal_evidence, hex_bytes
from adapters.fisco.observe import PageReader
from adapters.fisco.rpc import EndpointPool, FiscoRpcClient
from adapters.fisco.settings import FiscoSettings
from adapters.fisco.submit import Submitter
from adapters.gateway_abi import (
    ANCHOR_CONTRACT,
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

log = structlog.get_logger(__name__)

CURSOR_VERSION: Final = 1


class FiscoAdapter(ChainAdapter):
    def __init__(self, settings: FiscoSettings) -> None:
        self.settings = settings
        self.chain = settings.chain
        self.hasher = hasher_for(settings.crypto.hash_scheme)
        self.pool = EndpointPool(settings)
        self._submitter = Submitter(settings, self.pool)
        bodies = BodyIndex(
            settings.chain, settings.gateway, self.hasher, capacity=settings.body_cache_size
        )
        self._reader = PageReader(settings, self.hasher, self.pool, bodies)
        self._topics = self._reader.topics
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
        return self._cursor(max(height, 0), None)

    @staticmethod
    def _cursor(height: int, last_seal: int | None) -> Cursor:
        state: dict[str, int] = {"v": CURSOR_VERSION, "next": height}
        if last_seal is not None:
            state["seal"] = last_seal
        return json.dumps(state)

    def _parse_cursor(self, cursor: Cursor) -> tuple[int, int | None]:
        try:
            state = json.loads(cursor[:200])
            height, seal = state["next"], state.get("seal")
            ok = (
                state.get("v") == CURSOR_VERSION
                and _natural(height)
                and (seal is None or _natural(seal))
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            ok = False
        if not ok:
            raise ConfigurationError(f"not a FISCO cursor: {cursor[:80]!r}", chain=self.chain)
        return int(height), None if seal is None else int(seal)

    # ------------------------------------------------------------------------------- observe

    async def facts(self, cursor: Cursor, *, max_blocks: int = 1000) -> FactPage:
        await self._ready()
        start, last_seal = self._parse_cursor(cursor)

        async def page(client: FiscoRpcClient) -> FactPage:
            head = _int(await client.call("getBlockNumber"), client, "getBlockNumber")
            if start > head:
                return FactPage((), cursor, head)
            end = min(head, start + max(max_blocks, 1) - 1)
            read = await self._reader.read(client, start, end, last_seal)
            log.info(
                "facts_read",
                chain=self.chain,
                endpoint=client.name,
                start=start,
                end=read.next_height - 1,
                facts=len(read.facts),
            )
            return FactPage(tuple(read.facts), self._cursor(read.next_height, read.last_seal), head)

        return await self.pool.run(page)

    async def refetch(self, fact: Fact, *, avoid: frozenset[str]) -> Fact:
        """The fact with its evidence from an endpoint not in ``avoid``: first from the seal
        transaction its bundle names (cheap), else found by id in the blocks within
        ``block_range`` of its height (a probe without evidence or height: of the head).
        The bundle came from the endpoint whose evidence failed: a wrong transaction there
        must not make honest endpoints answer "no such fact"."""
        await self._ready()
        tx = fact.evidence.bundle.get("transaction") if fact.evidence is not None else None
        tx_hash = tx.get("hash") if isinstance(tx, dict) else None
        key = fact.result_hash if fact.kind is FactKind.DELIVERY_RESULT else fact.id

        async def again(client: FiscoRpcClient) -> Fact:
            if isinstance(tx_hash, str) and key is not None:
                try:
                    found = await fetch_seal_evidence(client, self.settings, self.hasher, tx_hash)
                except (NotFound, UnexpectedResponse):
                    found = None
                if isinstance(found, SealEvidence) and key in (
                    *found.seal.sent_ids,
                    *found.seal.result_hashes,
                ):
                    evidence = Evidence(found.bundle, found.endpoint, found.seal.number)
                    return replace(fact, evidence=evidence, endpoint=client.name)
            return await self._by_id(client, fact)

        return await self.pool.run(again, avoid=avoid)

    async def _by_id(self, client: FiscoRpcClient, fact: Fact) -> Fact:
        """The fact of ``fact``'s kind and id read from ``client``'s blocks near its height."""
        head = _int(await client.call("getBlockNumber"), client, "getBlockNumber")
        span = self.settings.block_range
        centre = fact.height if 0 < fact.height <= head else head
        low, high = max(centre - span, 0), min(centre + span, head)
        start, last_seal = low, None
        while start <= high:
            read = await self._reader.read(client, start, high, last_seal)
            for candidate in read.facts:
                if candidate.kind is fact.kind and candidate.id == fact.id:
                    return candidate
            start, last_seal = read.next_height, read.last_seal
        raise UnexpectedResponse(
            f"no {fact.kind} fact of 0x{fact.id.hex()} in blocks [{low}, {high}]",
            chain=self.chain,
            endpoint=client.name,
        )

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

    async def delivery_status(
        self, message_id: bytes, *, final: bool = False
    ) -> DeliveryStatus | None:
        await self._ready()
        data = delivery_status_call(message_id, self.hasher)
        (value,) = await (self._agreed_view if final else self._view)("deliveryStatus", data)
        return DeliveryStatus(value) if value else None

    async def sent_state(self, message_id: bytes, *, final: bool = False) -> int:
        await self._ready()
        data = sent_state_call(message_id, self.hasher)
        (value,) = await (self._agreed_view if final else self._view)("sentState", data)
        return int(value)

    async def _agreed_view(self, name: str, data: bytes) -> tuple[Any, ...]:
        """PBFT blocks are final at once, so the latest block is final; every answering
        endpoint must agree (:func:`agreed`): one endpoint must not confirm its own report."""
        names = [c.name for c in self.pool.clients]

        def ask(one: str) -> Awaitable[tuple[Any, ...]]:
            return self._view(name, data, avoid=frozenset(n for n in names if n != one))

        result: tuple[Any, ...] = await agreed(self.chain, names, ask, what=name)
        return result

    async def _view(
        self, name: str, data: bytes, *, avoid: frozenset[str] = frozenset()
    ) -> tuple[Any, ...]:
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

        return await self.pool.run(read, avoid=avoid)

    async def anchor(
        self, contract: bytes, seq: int, head_hash: bytes, checkpoint_digest: bytes
    ) -> Submission:
        """``AuditAnchor.anchor`` on ``contract``, from the relayer account."""
        await self._ready()
        data = call_data(
            "anchor", [seq, head_hash, checkpoint_digest], self.hasher, contract=ANCHOR_CONTRACT
        )
        _, submission = await self._submitter.submit(
            self.settings.relayer_key, data, "anchor", to="0x" + contract.hex()
        )
        return submission

    async def close(self) -> None:
        await self.pool.close()


def _int(value: object, client: FiscoRpcClient, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UnexpectedResponse(
            f"{what} is not a block number or time", chain=client.chain, endpoint=client.name
        )
    return value


def _natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
