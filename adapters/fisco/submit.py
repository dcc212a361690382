"""Transactions to the gateway: TARS-encoded, signed, sent, and their receipts awaited.

One signed transaction (version 0, ``blockLimit`` = head + 500, a fresh 1-20 digit nonce,
``to`` = ``0x`` + 40 lowercase hex, empty ``abi``) is sent to one endpoint after another until
one takes it; the same bytes are safe to resend, since a node refuses a known nonce
(AlreadyInTxPool, TxAlreadyInChain), and the receipt is then awaited by hash.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import structlog

from adapters.base import (
    ChainTimeout,
    ConfigurationError,
    NotFound,
    RejectedByChain,
    Submission,
    UnexpectedResponse,
)
from adapters.fisco.errors import TransactionFieldError
from adapters.fisco.rpc import EndpointPool, FiscoRpcClient, TransactionKnown
from adapters.fisco.settings import FiscoSettings
from adapters.fisco.transaction import (
    build_transaction,
    random_nonce,
    sign_transaction,
    transaction_hex,
)

log = structlog.get_logger(__name__)

BLOCK_LIMIT_RANGE: Final = 500
POLL_INTERVAL_S: Final = 0.1


class Submitter:
    def __init__(self, settings: FiscoSettings, pool: EndpointPool) -> None:
        self.settings = settings
        self.pool = pool

    async def submit(
        self, key: bytes | None, data: bytes, what: str, *, to: str | None = None
    ) -> tuple[dict[str, Any], Submission]:
        """Send ``data`` to the gateway (or to the contract ``to``, 0x-hex) signed by ``key``;
        the receipt of a successful call."""
        s = self.settings
        if key is None:
            raise ConfigurationError(f"{what}: no key configured for it", chain=s.chain)
        head = await self.pool.call("getBlockNumber")
        if not isinstance(head, int) or isinstance(head, bool):
            raise UnexpectedResponse("getBlockNumber is not an integer", chain=s.chain)
        try:
            tx = build_transaction(
                chain_id=s.chain_id,
                group_id=s.group_id,
                block_limit=head + BLOCK_LIMIT_RANGE,
                to=s.gateway_hex if to is None else to,
                input=data,
                nonce=random_nonce(),
            )
            signed = sign_transaction(tx, key, s.crypto)
        except TransactionFieldError as exc:
            raise ConfigurationError(f"{what}: {exc.reason}", chain=s.chain) from exc
        tx_hash = "0x" + signed.data_hash.hex()
        text = transaction_hex(signed)
        deadline = time.monotonic() + s.receipt_timeout

        tried: list[str] = []

        async def send(client: FiscoRpcClient) -> tuple[dict[str, Any], str]:
            left = max(deadline - time.monotonic(), 0.1)
            receipt = None
            if tried:  # an endpoint before may have sent it: a committed nonce is refused
                receipt = await self._receipt(client, tx_hash)
            tried.append(client.name)
            try:
                if receipt is None:
                    receipt = await client.call("sendTransaction", text, False, timeout=left)
            except TransactionKnown:
                receipt = await self._await_receipt(client, tx_hash, deadline)
            if not isinstance(receipt, dict):
                raise UnexpectedResponse(
                    f"{what}: receipt is not an object", chain=s.chain, endpoint=client.name
                )
            sent = receipt.get("transactionHash")
            if not isinstance(sent, str) or sent.lower() != tx_hash:
                # checked here, so that the next endpoint is asked for the receipt
                raise UnexpectedResponse(
                    f"{what}: the receipt is not of {tx_hash} (it names {str(sent)[:80]!r})",
                    chain=s.chain,
                    endpoint=client.name,
                )
            return receipt, client.name

        receipt, endpoint = await self.pool.run(send)
        return receipt, self._submission(receipt, tx_hash, what, endpoint)

    async def _await_receipt(
        self, client: FiscoRpcClient, tx_hash: str, deadline: float
    ) -> dict[str, Any]:
        while True:
            receipt = await self._receipt(client, tx_hash)
            if receipt is not None:
                return receipt
            if time.monotonic() >= deadline:
                raise ChainTimeout(
                    f"no receipt for {tx_hash}", chain=self.settings.chain, endpoint=client.name
                )
            await asyncio.sleep(POLL_INTERVAL_S)

    async def _receipt(self, client: FiscoRpcClient, tx_hash: str) -> dict[str, Any] | None:
        try:
            receipt = await client.call("getTransactionReceipt", tx_hash, False)
        except NotFound:
            return None
        return receipt if isinstance(receipt, dict) else None

    def _submission(
        self, receipt: dict[str, Any], tx_hash: str, what: str, endpoint: str
    ) -> Submission:
        chain = self.settings.chain
        status = receipt.get("status")
        if status != 0:
            message = str(receipt.get("message") or "")[:300]
            output = str(receipt.get("output") or "")[:200]
            raise RejectedByChain(
                f"{what} {tx_hash} failed: status {status} {message} output {output}".strip(),
                chain=chain,
                endpoint=endpoint,
            )
        height = receipt.get("blockNumber")
        if not isinstance(height, int) or isinstance(height, bool):
            raise UnexpectedResponse(
                f"{what}: receipt without a block number", chain=chain, endpoint=endpoint
            )
        gas = receipt.get("gasUsed")
        gas_used = int(gas) if isinstance(gas, str) and gas.isdigit() else None
        log.info("transaction_included", chain=chain, call=what, tx_hash=tx_hash, height=height)
        return Submission(tx_hash=tx_hash, height=height, endpoint=endpoint, gas_used=gas_used)
