"""One page of facts from one endpoint: the gateway's logs in block order, seals judged.

Logs are read ``block_range`` blocks at a time and handled in chain order: a body
(``MessageSent`` / ``MessageDelivered``) goes into the :class:`BodyIndex` of bodies not sealed
yet; a ``Sealed`` log takes its entries' bodies out of it, and looks up those it does not hold
(requeued entries, bodies dropped from the bounded index) by id or result hash, newest blocks
first, at most ``body_lookback_blocks`` back. Each seal's bodies are its own until its facts
are built, so nothing a page needs can be evicted under it. Past ``page_bytes`` of facts the
page ends after the block being read (it shrinks; it never fails for size).

Seals are numbered 1, 2, 3... by the gateway: a jump in the numbers is a seal the endpoint
hid. A ``Sealed`` log whose transaction is not exactly ``seal()`` is first the endpoint's
fault (an altered transaction or receipt, or a log it invented): only when the endpoint's
answers hold together (:func:`consistency_problem`) and every other endpoint serves the same,
is it reported as ``unusable_seal`` for the relay to requeue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import structlog

from adapters.base import (
    ChainUnavailable,
    Evidence,
    Fact,
    FactKind,
    UnexpectedResponse,
)
from adapters.fisco.bodies import (
    ACKNOWLEDGED_ABI,
    DELIVERED_ABI,
    SEALED_ABI,
    SENT_ABI,
    Body,
    BodyIndex,
    LogPosition,
    ResultBody,
    SentBody,
    body_key,
    body_size,
    decode_ack,
    decode_body,
    parse_log,
)
from adapters.fisco.evidence import (
    RefusedSeal,
    SealEvidence,
    consistency_problem,
    fetch_seal_evidence,
)
from adapters.fisco.rpc import FAILOVER_ERRORS, EndpointPool, FiscoRpcClient
from adapters.fisco.settings import FiscoSettings
from verifier.hashing import Hasher
from verifier.types import DecodedLog

log = structlog.get_logger(__name__)

UNUSABLE_FACT_BYTES = 1024


@dataclass(frozen=True, slots=True)
class PageRead:
    facts: list[Fact]
    next_height: int
    """The first block not read (the page may end before its last block, see ``page_bytes``)."""
    last_seal: int | None
    """The number of the last seal read, or before the page when it has none."""


class _SealNumbers:
    """Seals follow each other 1, 2, 3...: a jump is a seal the endpoint hid."""

    def __init__(self, last: int | None, chain: str, endpoint: str) -> None:
        self.last, self.last_tx = last, ""
        self.chain, self.endpoint = chain, endpoint

    def accept(self, number: int, tx_hash: str) -> bool:
        """False for the same log listed twice; raises for a gap or a repeat."""
        if number == self.last and tx_hash == self.last_tx:
            return False
        if self.last is not None and number != self.last + 1:
            raise UnexpectedResponse(
                f"seal {number} ({tx_hash}) follows seal {self.last}: the endpoint hides "
                "or repeats a seal",
                chain=self.chain,
                endpoint=self.endpoint,
            )
        self.last, self.last_tx = number, tx_hash
        return True


class PageReader:
    def __init__(
        self, settings: FiscoSettings, hasher: Hasher, pool: EndpointPool, bodies: BodyIndex
    ) -> None:
        self.settings, self.hasher, self.pool, self.bodies = settings, hasher, pool, bodies
        self.chain = settings.chain
        self.topics = {
            abi.name: abi.topic0(hasher)
            for abi in (SENT_ABI, DELIVERED_ABI, ACKNOWLEDGED_ABI, SEALED_ABI)
        }

    async def read(
        self, client: FiscoRpcClient, start: int, end: int, last_seal: int | None
    ) -> PageRead:
        """Facts of blocks ``start``.. (up to ``end``) from ``client``, in chain order."""
        facts: list[Fact] = []
        held = 0
        seals = _SealNumbers(last_seal, self.chain, client.name)
        step = self.settings.block_range
        for lo in range(start, end + 1, step):
            hi = min(end, lo + step - 1)
            logs = self._parse(await self.logs(client, lo, hi, []), lo, hi)
            for height, block in groupby(logs, key=lambda item: item[1].height):
                if held > self.settings.page_bytes:
                    return PageRead(facts, height, seals.last)  # a later block: progress
                for decoded, at in block:
                    new, size = await self._handle(client, decoded, at, seals)
                    facts.extend(new)
                    held += size
        return PageRead(facts, end + 1, seals.last)

    def _parse(self, entries: list[Any], lo: int, hi: int) -> list[tuple[DecodedLog, LogPosition]]:
        logs = []
        for entry in entries:
            parsed = parse_log(entry, self.settings.gateway)
            if parsed is not None and lo <= parsed[1].height <= hi:
                logs.append(parsed)
        logs.sort(key=lambda item: item[1].order)
        return logs

    async def _handle(
        self, client: FiscoRpcClient, decoded: DecodedLog, at: LogPosition, seals: _SealNumbers
    ) -> tuple[list[Fact], int]:
        topic0 = decoded.topics[0]
        if topic0 in (self.topics["MessageSent"], self.topics["MessageDelivered"]):
            self.bodies.add(decoded, at)
        elif topic0 == self.topics["Sealed"]:
            if len(decoded.topics) != 2:
                raise UnexpectedResponse(
                    f"a Sealed log of the gateway with {len(decoded.topics)} topics",
                    chain=self.chain,
                    endpoint=client.name,
                )
            number = int.from_bytes(decoded.topics[1], "big")
            if seals.accept(number, at.tx_hash):
                return await self._seal_facts(client, at, number)
        elif topic0 == self.topics["MessageAcknowledged"]:
            fact = await self._ack_fact(client, decoded, at)
            if fact is not None:
                return [fact], 0
        return [], 0

    async def logs(
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

    # ------------------------------------------------------------------------------- seals

    async def _seal_facts(
        self, client: FiscoRpcClient, at: LogPosition, number: int
    ) -> tuple[list[Fact], int]:
        found = await fetch_seal_evidence(client, self.settings, self.hasher, at.tx_hash)
        if isinstance(found, RefusedSeal):
            return [await self._unusable(client, found, at, number)], UNUSABLE_FACT_BYTES
        if found.seal.number != number or found.height != at.height:
            raise UnexpectedResponse(
                f"getLogs lists seal {number} at block {at.height}, its receipt says seal "
                f"{found.seal.number} at block {found.height}",
                chain=self.chain,
                endpoint=client.name,
            )
        bodies = await self._bodies_of(client, found)
        evidence = Evidence(found.bundle, found.endpoint, found.seal.number)
        facts = []
        for key in found.seal.result_hashes:
            r = bodies[key]
            if not isinstance(r, ResultBody):
                raise self._mixed(client, key)
            facts.append(
                self.fact(
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
            s = bodies[key]
            if not isinstance(s, SentBody):
                raise self._mixed(client, key)
            facts.append(
                self.fact(FactKind.MESSAGE_SENT, s.at, key, client, evidence, message=s.message)
            )
        log.info(
            "seal_observed",
            chain=self.chain,
            seal_number=number,
            height=found.height,
            sent=len(found.seal.sent_ids),
            results=len(found.seal.result_hashes),
        )
        size = len(json.dumps(found.bundle)) + sum(body_size(b) for b in bodies.values())
        return facts, size

    async def _bodies_of(self, client: FiscoRpcClient, found: SealEvidence) -> dict[bytes, Body]:
        """The bodies of the seal's entries: taken from the index, the rest looked up."""
        bodies: dict[bytes, Body] = {}
        for key in (*found.seal.result_hashes, *found.seal.sent_ids):
            body = self.bodies.take(key)
            if body is not None:
                bodies[key] = body
        sent = [k for k in found.seal.sent_ids if k not in bodies]
        results = [k for k in found.seal.result_hashes if k not in bodies]
        hi, floor = found.height, max(0, found.height - self.settings.body_lookback_blocks)
        while (sent or results) and hi >= floor:
            lo = max(floor, hi - self.settings.block_range + 1)
            for topics in self._body_queries(sent, results):
                for entry in await self.logs(client, lo, hi, topics):
                    parsed = parse_log(entry, self.settings.gateway)
                    body = None if parsed is None else self._decode(*parsed)
                    if body is not None and body_key(body) in (*sent, *results):
                        bodies.setdefault(body_key(body), body)
            sent = [k for k in sent if k not in bodies]
            results = [k for k in results if k not in bodies]
            hi = lo - 1
        if sent or results:
            first = (sent or results)[0].hex()
            raise UnexpectedResponse(
                f"seal {found.seal.number}: no body that hashes to sealed entry 0x{first} "
                f"in the {self.settings.body_lookback_blocks} blocks up to {found.height}",
                chain=self.chain,
                endpoint=client.name,
            )
        return bodies

    def _mixed(self, client: FiscoRpcClient, key: bytes) -> UnexpectedResponse:
        return UnexpectedResponse(
            f"0x{key.hex()} is both a sent id and a result hash",
            chain=self.chain,
            endpoint=client.name,
        )

    def _decode(self, decoded: DecodedLog, at: LogPosition) -> Body | None:
        s = self.settings
        return decode_body(decoded, at, s.chain, s.gateway, self.hasher)

    def _body_queries(self, sent: list[bytes], results: list[bytes]) -> list[list[Any]]:
        queries: list[list[Any]] = []
        if sent:
            topic = "0x" + self.topics["MessageSent"].hex()
            queries.append([[topic], ["0x" + k.hex() for k in sent]])
        if results:
            topic = "0x" + self.topics["MessageDelivered"].hex()
            queries.append([[topic], None, ["0x" + k.hex() for k in results]])
        return queries

    async def _unusable(
        self, client: FiscoRpcClient, refused: RefusedSeal, at: LogPosition, number: int
    ) -> Fact:
        """The ``unusable_seal`` fact, once every endpoint serves the seal the same way."""
        s = self.settings

        async def inconsistency(endpoint: FiscoRpcClient, served: RefusedSeal) -> str | None:
            return await consistency_problem(
                endpoint,
                s,
                self.hasher,
                served,
                height=at.height,
                tx_hash=at.tx_hash,
                seal_number=number,
            )

        problem = await inconsistency(client, refused)
        if problem is not None:
            raise UnexpectedResponse(
                f"seal {number} ({at.tx_hash}) is served as not exactly seal() "
                f"({refused.reason}), and {problem}",
                chain=self.chain,
                endpoint=client.name,
            )
        for other in self.pool.clients:
            if other is client:
                continue
            try:
                theirs = await fetch_seal_evidence(other, s, self.hasher, at.tx_hash)
                bad = None
                if isinstance(theirs, RefusedSeal):
                    bad = await inconsistency(other, theirs)
            except FAILOVER_ERRORS as exc:
                raise ChainUnavailable(
                    f"seal {number} looks unusable ({refused.reason}); {other.name} could "
                    f"not confirm it: {exc.reason}",
                    chain=self.chain,
                    endpoint=other.name,
                ) from None
            if isinstance(theirs, SealEvidence):
                raise UnexpectedResponse(
                    f"seal {number} ({at.tx_hash}) is served here as not exactly seal() "
                    f"({refused.reason}), and as seal() by {other.name}",
                    chain=self.chain,
                    endpoint=client.name,
                )
            if bad is not None:  # that endpoint's own fault: it does not get a vote
                self.pool.mark_failed(
                    other, UnexpectedResponse(bad, chain=self.chain, endpoint=other.name)
                )
        log.warning(
            "seal_unusable",
            chain=self.chain,
            seal_number=number,
            height=at.height,
            tx_hash=at.tx_hash,
            reason=refused.reason,
        )
        return self.fact(
            FactKind.UNUSABLE_SEAL, at, b"", client, None, seal_number=number, reason=refused.reason
        )

    # ------------------------------------------------------------------------------- facts

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
        return self.fact(FactKind.ACKNOWLEDGED, at, ack[0], client, None, ack_status=ack[1])

    def fact(
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
