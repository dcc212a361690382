"""``EvmAdapter``: the ``ChainAdapter`` of an Ethereum-compatible chain (Anvil, geth, Besu...).

Observation runs a whole page on one endpoint (final head, logs, blocks, receipts, proofs), so a
page's parts agree; an endpoint that fails, hangs or answers inconsistently is marked unhealthy
and the page is read again from the next one. Submissions go through :mod:`adapters.evm.submit`
from the relayer account, or from the separate sender account for ``send_message``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Sequence
from typing import Any

import structlog

from adapters.base import (
    ChainStatus,
    ConfigurationError,
    Cursor,
    EndpointHealth,
    Fact,
    FactKind,
    FactPage,
    Submission,
    UnexpectedResponse,
    agreed,
    endpoint_names,
)
from adapters.evm.facts import FactReader
from adapters.evm.gas import batch_gas_bound
from adapters.evm.rpc import EndpointPool, EvmEndpoint, json_list, json_object, quantity
from adapters.evm.settings import EvmSettings
from adapters.evm.submit import Submitter
from adapters.gateway_abi import (
    ANCHOR_CONTRACT,
    acknowledge_call,
    call_data,
    decode_output,
    deliver_call,
    delivery_status_call,
    requeue_call,
    send_message_call,
    sent_state_call,
)
from verifier.events import parse_event_abi
from verifier.hashing import keccak256
from verifier.messages import (
    MESSAGE_ACKNOWLEDGED_EVENT,
    MESSAGE_DELIVERED_EVENT,
    MESSAGE_SENT_EVENT,
    DeliveryResult,
    DeliveryStatus,
    Message,
)

log = structlog.get_logger(__name__)
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_SENT_TOPIC = "0x" + parse_event_abi(MESSAGE_SENT_EVENT).topic0(keccak256).hex()
_TOPICS = {
    kind: "0x" + parse_event_abi(event).topic0(keccak256).hex()
    for kind, event in (
        (FactKind.MESSAGE_SENT, MESSAGE_SENT_EVENT),
        (FactKind.DELIVERY_RESULT, MESSAGE_DELIVERED_EVENT),
        (FactKind.ACKNOWLEDGED, MESSAGE_ACKNOWLEDGED_EVENT),
    )
}


class EvmAdapter:
    """One EVM chain, its gateway contract, its endpoints and its accounts."""

    def __init__(self, settings: EvmSettings) -> None:
        self.settings = settings
        self.chain = settings.chain
        self._pool = EndpointPool(
            [
                EvmEndpoint(
                    url,
                    chain=settings.chain,
                    chain_id=settings.chain_id,
                    call_timeout=settings.call_timeout,
                    name=name,
                )
                for url, name in zip(
                    settings.endpoints, endpoint_names(settings.endpoints), strict=True
                )
            ],
            chain=settings.chain,
            check=self._check_gateway,
        )
        self._reader = FactReader(settings)
        self._allowances: dict[str, int] = {}
        self._relayer = (
            Submitter(self._pool, settings, settings.relayer_key, "relayer")
            if settings.relayer_key is not None
            else None
        )
        self._sender = (
            Submitter(self._pool, settings, settings.sender_key, "sender")
            if settings.sender_key is not None
            else None
        )

    # ------------------------------------------------------------------ observation

    def initial_cursor(self, height: int = 0) -> Cursor:
        return json.dumps({"next": max(height, 0)})

    def _start(self, cursor: Cursor) -> tuple[int, str | None]:
        """The cursor's next height and the hash of the block before it (None: not checked,
        as for an initial cursor)."""
        try:
            parsed = json.loads(cursor)
            value, block_hash = parsed["next"], parsed.get("hash")
        except (ValueError, TypeError, KeyError, AttributeError):
            value, block_hash = None, None
        valid_hash = block_hash is None or (
            isinstance(block_hash, str) and _HASH.fullmatch(block_hash) is not None
        )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or not valid_hash:
            raise ConfigurationError(f"not an EVM cursor: {cursor[:80]!r}", chain=self.chain)
        return value, block_hash

    async def facts(self, cursor: Cursor, *, max_blocks: int = 1000) -> FactPage:
        """Facts of final blocks after ``cursor``. The cursor keeps the hash of the last block
        a page covered; the next page first re-reads that block, and a different hash there
        (a reorganisation deeper than the finality depth: facts already reported may be gone,
        new ones would be missed) is an UnexpectedResponse naming the endpoint."""
        start, covered = self._start(cursor)
        limit = max(max_blocks, 1)

        async def page(endpoint: EvmEndpoint) -> FactPage:
            _, final = await self._reader.final_head(endpoint)
            if start > final:
                return FactPage(facts=(), cursor=cursor, final_height=final)
            if covered is not None and start > 0:
                await self._check_covered(endpoint, start - 1, covered)
            end = min(final, start + limit - 1)
            facts: list[Fact] = []
            for number, count in (await self._reader.logs(endpoint, start, end)).items():
                block = await self._reader.block(endpoint, number)
                facts.extend(self._reader.facts(block, expected_logs=count))
            last = await self._reader.header(endpoint, end)
            log.info(
                "facts_read",
                chain=self.chain,
                first=start,
                last=end,
                final=final,
                facts=len(facts),
                endpoint=endpoint.name,
            )
            next_cursor = json.dumps({"next": end + 1, "hash": str(last["hash"]).lower()})
            return FactPage(facts=tuple(facts), cursor=next_cursor, final_height=final)

        return await self._pool.run(page, what="facts")

    async def _check_covered(self, endpoint: EvmEndpoint, height: int, expected: str) -> None:
        header = await self._reader.header(endpoint, height)
        if str(header["hash"]).lower() != expected.lower():
            log.error(
                "chain_reorganised",
                chain=self.chain,
                height=height,
                endpoint=endpoint.name,
                expected=expected,
                found=header["hash"],
            )
            raise UnexpectedResponse(
                f"chain reorganised below the finality depth at height {height} (block hash "
                f"{header['hash']}, the cursor says {expected}): operator action needed",
                chain=self.chain,
                endpoint=endpoint.name,
            )

    async def refetch(self, fact: Fact, *, avoid: frozenset[str]) -> Fact:
        """The fact of this kind and id, found by id (``eth_getLogs`` on the gateway with the
        event's topic and the id as topic1) in final blocks within ``log_range`` of the claimed
        height, from an endpoint not in ``avoid``. Never located by the claimed block hash,
        transaction or log index: those came from the endpoint whose evidence failed, and a
        wrong one would make honest endpoints answer "no such fact". A height of 0 (unknown,
        as for a probe built from an id alone) searches the last ``log_range`` final blocks."""
        topic = _TOPICS.get(fact.kind)
        if topic is None:
            raise UnexpectedResponse(f"no {fact.kind} fact is found by id", chain=self.chain)
        span = self.settings.log_range

        async def again(endpoint: EvmEndpoint) -> Fact:
            _, final = await self._reader.final_head(endpoint)
            centre = fact.height if fact.height > 0 else final
            low, high = max(centre - span, 0), min(centre + span, final)
            for number in await self._blocks_with(endpoint, topic, fact.id, low, high):
                block = await self._reader.block(endpoint, number)
                for candidate in self._reader.facts(block):
                    if candidate.kind is fact.kind and candidate.id == fact.id:
                        return candidate
            raise UnexpectedResponse(
                f"no final {fact.kind} fact of 0x{fact.id.hex()} in blocks [{low}, {high}]",
                chain=self.chain,
                endpoint=endpoint.name,
            )

        return await self._pool.run(again, what="refetch", avoid=avoid)

    async def _blocks_with(
        self, endpoint: EvmEndpoint, topic: str, id: bytes, low: int, high: int
    ) -> list[int]:
        """Blocks in [low, high] holding a gateway log with ``topic`` and topic1 = ``id``."""
        gateway = "0x" + self.settings.gateway.hex()
        numbers: set[int] = set()
        for start in range(low, high + 1, self.settings.log_range):
            end = min(start + self.settings.log_range - 1, high)
            query = {
                "fromBlock": hex(start),
                "toBlock": hex(end),
                "address": gateway,
                "topics": [topic, "0x" + id.hex()],
            }
            found = json_list(await endpoint.call("eth_getLogs", [query]), "eth_getLogs", endpoint)
            for raw in found:
                entry = json_object(raw, "log", endpoint)
                if entry.get("removed") is True:
                    continue
                number = quantity(entry.get("blockNumber"), "log.blockNumber", endpoint)
                if start <= number <= end:
                    numbers.add(number)
        return sorted(numbers)

    async def status(self) -> ChainStatus:
        async def read(endpoint: EvmEndpoint) -> ChainStatus:
            head, final = await self._reader.final_head(endpoint)
            latest = json_object(
                await endpoint.call("eth_getBlockByNumber", [hex(head), False]), "head", endpoint
            )
            timestamp = quantity(latest.get("timestamp"), "timestamp", endpoint)
            return ChainStatus(chain=self.chain, head=head, final_head=final, timestamp=timestamp)

        status = await self._pool.run(read, what="status")
        return ChainStatus(
            chain=status.chain,
            head=status.head,
            final_head=status.final_head,
            timestamp=status.timestamp,
            endpoints=self._pool.health(),
        )

    def health(self) -> tuple[EndpointHealth, ...]:
        """Each endpoint's health as last seen, without asking any of them."""
        return self._pool.health()

    # ------------------------------------------------------------------ views

    async def _check_gateway(self, endpoint: EvmEndpoint) -> None:
        """Before an endpoint's first use: the gateway has code there and its ``chainName()``
        is the configured chain (else every ``MessageSent`` would be skipped as another
        chain's while the cursor moves on). ConfigurationError naming both names otherwise."""
        gateway = "0x" + self.settings.gateway.hex()
        code = await endpoint.call("eth_getCode", [gateway, "latest"])
        if not isinstance(code, str) or not code.startswith("0x"):
            raise UnexpectedResponse(
                "eth_getCode: expected hex data", chain=self.chain, endpoint=endpoint.name
            )
        if code == "0x":
            raise ConfigurationError(
                f"the configured gateway {gateway} has no code",
                chain=self.chain,
                endpoint=endpoint.name,
            )
        (name,) = await _view_on(endpoint, self.settings.gateway, "chainName", chain_name_call())
        if name != self.chain:
            raise ConfigurationError(
                f"the gateway {gateway} is chain {str(name)[:80]!r}, the configuration says "
                f"{self.chain!r}",
                chain=self.chain,
                endpoint=endpoint.name,
            )

    async def _view(self, name: str, data: bytes) -> tuple[Any, ...]:
        async def read(endpoint: EvmEndpoint) -> tuple[Any, ...]:
            return await _view_on(endpoint, self.settings.gateway, name, data)

        return await self._pool.run(read, what=name)

    async def _final_view(self, name: str, data: bytes) -> tuple[Any, ...]:
        """The view at each endpoint's final block (its finality tag or confirmations), every
        answering endpoint agreeing (:func:`agreed`): what closes or resubmits a message
        without evidence must not rest on one endpoint's word, nor on a block not yet final."""
        names = [e.name for e in self._pool.endpoints]

        def ask(one: str) -> Awaitable[tuple[Any, ...]]:
            async def read(endpoint: EvmEndpoint) -> tuple[Any, ...]:
                _, final = await self._reader.final_head(endpoint)
                return await _view_on(endpoint, self.settings.gateway, name, data, block=final)

            others = frozenset(n for n in names if n != one)
            return self._pool.run(read, what=name, avoid=others)

        result: tuple[Any, ...] = await agreed(self.chain, names, ask, what=name)
        return result

    async def delivery_status(
        self, message_id: bytes, *, final: bool = False
    ) -> DeliveryStatus | None:
        view = self._final_view if final else self._view
        (value,) = await view("deliveryStatus", delivery_status_call(message_id, keccak256))
        if value == 0:
            return None
        try:
            return DeliveryStatus(value)
        except ValueError:
            raise UnexpectedResponse(f"deliveryStatus returned {value}", chain=self.chain) from None

    async def sent_state(self, message_id: bytes, *, final: bool = False) -> int:
        view = self._final_view if final else self._view
        (value,) = await view("sentState", sent_state_call(message_id, keccak256))
        return int(value)

    # ------------------------------------------------------------------ submissions

    def _account(self, submitter: Submitter | None, role: str) -> Submitter:
        if submitter is None:
            raise ConfigurationError(f"no {role} key is configured", chain=self.chain)
        return submitter

    async def send_message(
        self, dst_chain: str, receiver: bytes, payload: bytes, timeout: int
    ) -> tuple[bytes, Submission]:
        sender = self._account(self._sender, "sender")
        data = send_message_call(dst_chain, receiver, payload, timeout, keccak256)
        submission, receipt = await sender.submit(data, "sendMessage")
        gateway = "0x" + self.settings.gateway.hex()
        for entry in receipt.get("logs") or []:
            topics = entry.get("topics") or []
            address = str(entry.get("address", "")).lower()
            if address == gateway and len(topics) == 2 and topics[0] == _SENT_TOPIC:
                return bytes.fromhex(str(topics[1])[2:]), submission
        raise UnexpectedResponse(
            f"sendMessage {submission.tx_hash} succeeded without a MessageSent log",
            chain=self.chain,
            endpoint=submission.endpoint,
        )

    async def _allowance(self, name: str) -> int:
        """``receiverGas()`` or ``ackGas()``: fixed at deployment, so read once."""
        if name not in self._allowances:
            (value,) = await self._view(name, call_data(name, [], keccak256))
            self._allowances[name] = int(value)
        return self._allowances[name]

    async def deliver(self, deliveries: Sequence[tuple[bytes, Message]]) -> Submission:
        """``deliverMessages``; its gas limit never below :func:`batch_gas_bound` (a receiver
        that behaves differently under eth_estimateGas cannot starve the batch)."""
        relayer = self._account(self._relayer, "relayer")
        data = deliver_call(deliveries, keccak256)
        allowance = await self._allowance("receiverGas")
        bound = batch_gas_bound(len(data), [allowance] * len(deliveries))
        submission, _ = await relayer.submit(data, "deliverMessages", min_gas=bound)
        return submission

    async def acknowledge(self, results: Sequence[DeliveryResult]) -> Submission:
        """``acknowledgeResults``; gas as for :meth:`deliver`, with ``ackGas`` per result."""
        relayer = self._account(self._relayer, "relayer")
        data = acknowledge_call(results, keccak256)
        allowance = await self._allowance("ackGas")
        bound = batch_gas_bound(len(data), [allowance] * len(results))
        submission, _ = await relayer.submit(data, "acknowledgeResults", min_gas=bound)
        return submission

    async def seal(self, *, force: bool = False) -> Submission | None:  # noqa: ARG002
        """EVM logs are evidence by themselves: nothing to seal."""
        return None

    async def requeue(self, seal_number: int) -> Submission:
        relayer = self._account(self._relayer, "relayer")
        submission, _ = await relayer.submit(requeue_call(seal_number, keccak256), "requeue")
        return submission

    async def anchor(
        self, contract: bytes, seq: int, head_hash: bytes, checkpoint_digest: bytes
    ) -> Submission:
        """``AuditAnchor.anchor`` on ``contract``, from the relayer account."""
        relayer = self._account(self._relayer, "relayer")
        data = call_data(
            "anchor", [seq, head_hash, checkpoint_digest], keccak256, contract=ANCHOR_CONTRACT
        )
        submission, _ = await relayer.submit(data, "anchor", to=contract)
        return submission

    async def close(self) -> None:
        await self._pool.close()


async def _view_on(
    endpoint: EvmEndpoint, gateway: bytes, name: str, data: bytes, *, block: int | None = None
) -> tuple[Any, ...]:
    """The gateway view ``name`` at ``block`` (default latest) on ``endpoint``, decoded
    strictly."""
    call = {"to": "0x" + gateway.hex(), "data": "0x" + data.hex()}
    raw = await endpoint.call("eth_call", [call, "latest" if block is None else hex(block)])
    try:
        return decode_output(name, bytes.fromhex(str(raw).removeprefix("0x")))
    except ValueError as exc:
        raise UnexpectedResponse(
            f"{name}: {exc}", chain=endpoint.chain, endpoint=endpoint.name
        ) from exc


def chain_name_call() -> bytes:
    return call_data("chainName", [], keccak256)


__all__ = ["EvmAdapter"]
