"""Transactions from one account: estimate, price, sign locally, send, wait, replace if stuck.

One transaction per account is in flight at a time (a lock), which keeps nonces gap-free; the
relay batches many messages into one call instead. A revert, at estimation or in the receipt,
is ``RejectedByChain`` with the decoded reason; any other failure resyncs the nonce.

Every hash signed for a nonce (the original, its replacement) is kept, and whatever sending
said, the receipts of all of them are polled until ``receipt_timeout``: a send that failed or
was refused ("nonce too low", "already known", "replacement underpriced": not endpoint faults)
may be a transaction that is, or was, mined. Reporting such a transaction as failed made the
relay send its message twice. The only errors are a timeout and a nonce consumed by none of
our hashes, both naming the hashes.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from eth_account import Account

from adapters.base import (
    AdapterError,
    ChainTimeout,
    ConfigurationError,
    NotFound,
    RejectedByChain,
    Submission,
    UnexpectedResponse,
)
from adapters.evm.gas import is_insufficient_gas
from adapters.evm.nonce import Fees, NonceManager, bumped_fees, initial_fees
from adapters.evm.rpc import (
    REVERT_CODE,
    EndpointPool,
    EvmEndpoint,
    JsonRpcError,
    json_object,
    quantity,
)
from adapters.evm.settings import EvmSettings
from adapters.gateway_abi import revert_reason

log = structlog.get_logger(__name__)
POLL_FIRST = 0.05
POLL_MAX = 1.0
_REFUSALS = (
    "nonce too low",
    "already known",
    "known transaction",
    "already imported",
    "replacement transaction underpriced",
    "replacement underpriced",
    "oldnonce",
    "alreadyknown",
)


def is_refusal(exc: JsonRpcError) -> bool:
    """Whether a node refused a raw transaction because its nonce is taken or it already has
    it. Nodes give no standard code for this (geth and Anvil say -32000 for everything), so the
    message is the only signal; this is the one place that reads it."""
    text = exc.reason.lower()
    return any(marker in text for marker in _REFUSALS)


@dataclass
class _Flight:
    """One nonce's transactions: every hash ever signed for it, newest last."""

    what: str
    nonce: int
    hashes: list[str] = field(default_factory=list)
    unsent: str | None = None
    """The latest raw transaction when no endpoint took it (offered again while polling)."""
    last_error: str | None = None


class Submitter:
    """Sends the gateway's transactions from one account (relayer or sender)."""

    def __init__(self, pool: EndpointPool, settings: EvmSettings, key: bytes, role: str) -> None:
        try:
            self._account = Account.from_key(key)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"the {role} key is not a valid secp256k1 key", chain=settings.chain
            ) from exc
        self.address: str = self._account.address
        self._pool = pool
        self._settings = settings
        self._role = role
        self._lock = asyncio.Lock()
        self.nonces = NonceManager(self._pending_count)
        self._block_gas_limit: int | None = None

    async def _pending_count(self) -> int:
        async def read(endpoint: EvmEndpoint) -> int:
            value = await endpoint.call("eth_getTransactionCount", [self.address, "pending"])
            return quantity(value, "eth_getTransactionCount", endpoint)

        return await self._pool.run(read, what="eth_getTransactionCount")

    async def submit(
        self, data: bytes, what: str, *, min_gas: int = 0, to: bytes | None = None
    ) -> tuple[Submission, dict[str, Any]]:
        """Send ``data`` to the gateway (or to the contract ``to``); the Submission and the
        receipt once it is included.

        The gas limit is the larger of the estimate (made with the real fee fields, as the
        transaction will run) × ``gas_margin`` and ``min_gas`` (the batch calls' bound that
        no receiver can talk down, :mod:`adapters.evm.gas`), at most the block gas limit.
        """
        async with self._lock:
            try:
                return await self._submit(data, what, min_gas, to)
            except BaseException:
                self.nonces.resync()
                raise

    async def _submit(
        self, data: bytes, what: str, min_gas: int, target: bytes | None
    ) -> tuple[Submission, dict[str, Any]]:
        s = self._settings
        contract = s.gateway if target is None else target
        to = "0x" + contract.hex()
        fees = await self._fees()
        call = {
            "from": self.address,
            "to": to,
            "data": "0x" + data.hex(),
            "type": "0x2",
            "maxFeePerGas": hex(fees.max_fee_per_gas),
            "maxPriorityFeePerGas": hex(fees.max_priority_fee_per_gas),
        }
        gas = max(math.ceil(await self._estimate(call, what) * s.gas_margin), min_gas)
        if self._block_gas_limit is not None:
            gas = min(gas, self._block_gas_limit)
        call["gas"] = hex(gas)
        nonce = await self.nonces.reserve()
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": s.chain_id,
            "nonce": nonce,
            "to": contract,
            "value": 0,
            "data": data,
            "gas": gas,
        }
        flight = _Flight(what=what, nonce=nonce)
        await self._send(flight, tx, fees)
        log.info(
            "transaction_sent", chain=s.chain, operation=what, tx_hash=flight.hashes[0], nonce=nonce
        )
        receipt, endpoint = await self._wait(flight, tx, fees)
        return await self._outcome(receipt, endpoint, call, what), receipt

    async def _wait(
        self, flight: _Flight, tx: dict[str, Any], fees: Fees
    ) -> tuple[dict[str, Any], str]:
        """The receipt of any of ``flight.hashes``, polled until ``receipt_timeout`` whatever
        sending said: a refused or failed send may still be (or have been) mined."""
        s = self._settings
        start = time.monotonic()
        replaced = False
        delay = POLL_FIRST
        while True:
            try:
                found, consumed = await self._receipt(flight)
            except RejectedByChain:
                raise
            except AdapterError as exc:  # every endpoint failed this round: keep polling
                flight.last_error = f"{exc.reason} ({exc.endpoint or exc.chain})"
                found, consumed = None, False
            if found is not None:
                return found
            elapsed = time.monotonic() - start
            if elapsed >= s.receipt_timeout:
                hashes = ", ".join(flight.hashes)
                if consumed:  # an endpoint may index receipts late: decided at the deadline
                    raise NotFound(
                        f"{flight.what}: nonce {flight.nonce} was consumed, by none of our "
                        f"transactions ({hashes}); is another process sending from this "
                        "account?",
                        chain=s.chain,
                    )
                last = f"; last error: {flight.last_error}" if flight.last_error else ""
                raise ChainTimeout(
                    f"{flight.what}: no receipt for {hashes} within {s.receipt_timeout:g} s{last}",
                    chain=s.chain,
                )
            if not replaced and elapsed >= s.receipt_timeout / 2:
                replaced = True
                fees = await self._replace(flight, tx, fees)
            elif flight.unsent is not None:  # no endpoint took it: offer the same bytes again
                await self._broadcast(flight, flight.unsent)
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    async def _replace(self, flight: _Flight, tx: dict[str, Any], fees: Fees) -> Fees:
        try:
            fees = bumped_fees(fees, await self._fees())
        except RejectedByChain:
            raise
        except AdapterError:
            fees = bumped_fees(fees)
        await self._send(flight, tx, fees)
        log.warning(
            "transaction_replaced",
            chain=self._settings.chain,
            operation=flight.what,
            nonce=flight.nonce,
            tx_hash=flight.hashes[-1],
            replaces=flight.hashes[0],
        )
        return fees

    async def _estimate(self, call: dict[str, Any], what: str) -> int:
        async def estimate(endpoint: EvmEndpoint) -> int | None:
            try:
                value = await endpoint.call("eth_estimateGas", [call])
            except JsonRpcError as exc:
                if exc.code == REVERT_CODE and is_insufficient_gas(_hex_bytes(exc.data)):
                    return None  # the chain's verdict, not the endpoint's fault
                if exc.code == REVERT_CODE:
                    raise _rejection(exc, what) from exc
                raise
            return quantity(value, "eth_estimateGas", endpoint)

        value = await self._pool.run(estimate, what="eth_estimateGas")
        if value is None:
            raise _out_of_gas(
                what, "the estimate reverted with InsufficientGas", chain=self._settings.chain
            )
        return value

    async def _fees(self) -> Fees:
        async def read(endpoint: EvmEndpoint) -> Fees:
            block = json_object(
                await endpoint.call("eth_getBlockByNumber", ["latest", False]),
                "latest block",
                endpoint,
            )
            base = quantity(block.get("baseFeePerGas"), "baseFeePerGas", endpoint)
            self._block_gas_limit = quantity(block.get("gasLimit"), "gasLimit", endpoint)
            tip = quantity(await endpoint.call("eth_maxPriorityFeePerGas", []), "tip", endpoint)
            return initial_fees(base, tip)

        return await self._pool.run(read, what="fees")

    async def _send(self, flight: _Flight, tx: dict[str, Any], fees: Fees) -> None:
        """Sign ``tx`` with ``fees``, remember its hash before sending, then offer it."""
        signed = Account.sign_transaction(
            dict(
                tx,
                maxFeePerGas=fees.max_fee_per_gas,
                maxPriorityFeePerGas=fees.max_priority_fee_per_gas,
            ),
            self._account.key,
        )
        flight.hashes.append("0x" + bytes(signed.hash).hex())
        await self._broadcast(flight, "0x" + bytes(signed.raw_transaction).hex())

    async def _broadcast(self, flight: _Flight, raw: str) -> None:
        """``eth_sendRawTransaction(raw)``. A refusal that says the nonce is taken or the
        transaction known ("nonce too low", "already known", "replacement underpriced") is
        not an endpoint fault: the endpoint stays healthy and the caller looks for receipts.
        Only a revert raises; any other failure leaves ``raw`` in ``flight.unsent``."""

        async def send(endpoint: EvmEndpoint) -> str | None:
            try:
                await endpoint.call("eth_sendRawTransaction", [raw])
            except JsonRpcError as exc:
                if exc.code == REVERT_CODE:
                    raise _rejection(exc, "eth_sendRawTransaction") from exc
                if is_refusal(exc):
                    return exc.reason
                raise
            return None

        s = self._settings
        try:
            refusal = await self._pool.run(send, what="eth_sendRawTransaction")
        except RejectedByChain:
            raise
        except AdapterError as exc:
            flight.unsent = raw
            flight.last_error = f"{exc.reason} ({exc.endpoint or exc.chain})"
            log.warning(
                "transaction_send_failed",
                chain=s.chain,
                operation=flight.what,
                nonce=flight.nonce,
                tx_hash=flight.hashes[-1],
                reason=exc.reason,
            )
            return
        flight.unsent = None
        if refusal is not None:
            log.warning(
                "transaction_refused",
                chain=s.chain,
                operation=flight.what,
                nonce=flight.nonce,
                tx_hash=flight.hashes[-1],
                reason=refusal,
            )

    async def _receipt(self, flight: _Flight) -> tuple[tuple[dict[str, Any], str] | None, bool]:
        """On one endpoint: the receipt of any of our hashes, and whether the account's mined
        nonce count is already past ours (read first, so a receipt found is never missed)."""
        hashes = list(flight.hashes)

        async def read(endpoint: EvmEndpoint) -> tuple[tuple[dict[str, Any], str] | None, bool]:
            mined = quantity(
                await endpoint.call("eth_getTransactionCount", [self.address, "latest"]),
                "eth_getTransactionCount",
                endpoint,
            )
            for tx_hash in hashes:
                value = await endpoint.call("eth_getTransactionReceipt", [tx_hash])
                if value is not None:
                    receipt = json_object(value, "receipt", endpoint)
                    if str(receipt.get("transactionHash", "")).lower() != tx_hash.lower():
                        raise UnexpectedResponse(
                            f"asked for the receipt of {tx_hash}, got one of "
                            f"{str(receipt.get('transactionHash'))[:80]}",
                            chain=self._settings.chain,
                            endpoint=endpoint.name,
                        )
                    return (receipt, endpoint.name), True
            return None, mined > flight.nonce

        return await self._pool.run(read, what="eth_getTransactionReceipt")

    async def _outcome(
        self, receipt: dict[str, Any], endpoint: str, call: dict[str, Any], what: str
    ) -> Submission:
        s = self._settings
        try:
            height = int(receipt["blockNumber"], 16)
            status = int(receipt["status"], 16)
            gas_used = int(receipt["gasUsed"], 16)
            tx_hash = str(receipt["transactionHash"])
        except (KeyError, TypeError, ValueError):
            raise UnexpectedResponse(
                f"{what}: malformed receipt", chain=s.chain, endpoint=endpoint
            ) from None
        if status != 1:
            reason = await self._replay_reason(call, height)
            log.warning(
                "transaction_reverted",
                chain=s.chain,
                operation=what,
                tx_hash=tx_hash,
                reason=reason,
                gas_used=gas_used,
            )
            limit = int(call["gas"], 16)
            if gas_used >= limit or reason.startswith("InsufficientGas"):
                raise _out_of_gas(
                    what,
                    f"{tx_hash} ran out of gas ({gas_used} of {limit} used; {reason})",
                    chain=s.chain,
                )
            raise RejectedByChain(
                f"{what} reverted in {tx_hash}: {reason}", chain=s.chain, endpoint=endpoint
            )
        log.info(
            "transaction_included", chain=s.chain, operation=what, tx_hash=tx_hash, height=height
        )
        return Submission(tx_hash=tx_hash, height=height, endpoint=endpoint, gas_used=gas_used)

    async def _replay_reason(self, call: dict[str, Any], height: int) -> str:
        """Best effort: the revert reason from replaying the call on the parent block's state."""

        async def replay(endpoint: EvmEndpoint) -> str:
            try:
                await endpoint.call("eth_call", [call, hex(max(height - 1, 0))])
            except JsonRpcError as exc:
                return revert_reason(_hex_bytes(exc.data))
            return "reverted (the replay succeeded: state changed within the block)"

        try:
            return await self._pool.run(replay, what="eth_call")
        except AdapterError:  # the reason is a courtesy; the revert is the verdict
            return "reverted (reason unavailable)"


def _hex_bytes(data: str | None) -> bytes | None:
    if not data or not data.startswith("0x"):
        return None
    try:
        return bytes.fromhex(data[2:])
    except ValueError:
        return None


def _rejection(exc: JsonRpcError, what: str) -> RejectedByChain:
    """A revert (JSON-RPC error 3) as RejectedByChain with its decoded reason."""
    return RejectedByChain(
        f"{what}: {revert_reason(_hex_bytes(exc.data))}", chain=exc.chain, endpoint=exc.endpoint
    )


def _out_of_gas(what: str, detail: str, *, chain: str) -> AdapterError:
    """Too little gas for the gateway's gas rule: retryable (a plain ``AdapterError``, never
    ``RejectedByChain``), since the same batch with more gas, or split, goes through."""
    return AdapterError(f"{what}: {detail}", chain=chain)
