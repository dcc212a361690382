"""Nonces, fee bumps and the submission loop of the EVM adapter, against a scripted fake node."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any, cast

import pytest
from eth_abi.abi import encode

from adapters.base import AdapterError, ChainTimeout, ChainUnavailable, NotFound, RejectedByChain
from adapters.evm.gas import batch_gas_bound
from adapters.evm.nonce import Fees, NonceManager, bumped_fees, initial_fees
from adapters.evm.rpc import EndpointPool, EvmEndpoint, JsonRpcError
from adapters.evm.settings import EvmSettings
from adapters.evm.submit import Submitter
from verifier.hashing import keccak256
from verifier.rlp import decode

KEY = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
URL = "http://fake-node"


def settings(**changes: Any) -> EvmSettings:
    values: dict[str, Any] = {
        "chain": "fake",
        "chain_id": 31337,
        "endpoints": (URL,),
        "gateway": bytes(range(20)),
        "relayer_key": KEY,
        "sender_key": None,
        "receipt_timeout": 5.0,
        **changes,
    }
    return EvmSettings(**values)


class FakeNode:
    """Answers like a node; mines a raw transaction when ``mine(n)`` says so."""

    def __init__(self) -> None:
        self.url = URL
        self.name = URL
        self.healthy = True
        self.last_error: str | None = None
        self.pending = 7
        self.base_fee = 1_000
        self.tip = 100
        self.sent: list[str] = []
        self.mine_on: int | None = 1
        """Mine the n-th raw transaction sent (1-based); None: never."""
        self.estimate_error: JsonRpcError | None = None
        self.send_errors: list[AdapterError] = []
        self.status = "0x1"
        self.count_reads = 0
        self.latest: int | None = None
        self.estimates: list[dict[str, Any]] = []
        self.gas_used = 40_000
        """eth_getTransactionCount(latest); None: ``pending`` (no other sender)."""

    async def check_chain_id(self) -> None:
        return None

    def _error(self, code: int, message: str, data: str | None = None) -> JsonRpcError:
        return JsonRpcError(message, chain="fake", endpoint=URL, code=code, data=data)

    async def call(self, method: str, params: Sequence[Any]) -> Any:
        if method == "eth_estimateGas":
            self.estimates.append(dict(params[0]))
            if self.estimate_error is not None:
                raise self.estimate_error
            return hex(50_000)
        if method == "eth_getBlockByNumber":
            return {"baseFeePerGas": hex(self.base_fee), "gasLimit": hex(30_000_000)}
        if method == "eth_maxPriorityFeePerGas":
            return hex(self.tip)
        if method == "eth_getTransactionCount" and params[1] == "latest":
            return hex(self.pending if self.latest is None else self.latest)
        if method == "eth_getTransactionCount":
            self.count_reads += 1
            return hex(self.pending)
        if method == "eth_sendRawTransaction":
            if self.send_errors:
                raise self.send_errors.pop(0)
            self.sent.append(params[0])
            return "0x" + keccak256(bytes.fromhex(params[0][2:])).hex()
        if method == "eth_getTransactionReceipt":
            return self._receipt(params[0])
        if method == "eth_call":
            data = bytes.fromhex("08c379a0") + encode(["string"], ["boom"])
            raise self._error(3, "execution reverted", "0x" + data.hex())
        raise AssertionError(method)

    def _receipt(self, tx_hash: str) -> dict[str, Any] | None:
        if self.mine_on is None or len(self.sent) < self.mine_on:
            return None
        mined = "0x" + keccak256(bytes.fromhex(self.sent[self.mine_on - 1][2:])).hex()
        if tx_hash != mined:
            return None
        self.pending += 1
        return {
            "transactionHash": mined,
            "blockNumber": "0x10",
            "status": self.status,
            "gasUsed": hex(self.gas_used),
            "logs": [],
        }

    async def close(self) -> None:
        return None


def fields(raw: str) -> dict[str, int]:
    """chainId, nonce, tip, maxFee and gas of a signed EIP-1559 transaction."""
    data = bytes.fromhex(raw[2:])
    assert data[0] == 2
    items = decode(data[1:])
    assert isinstance(items, list)
    names = ["chain_id", "nonce", "tip", "max_fee", "gas"]
    return {n: int.from_bytes(cast(bytes, items[i]), "big") for i, n in enumerate(names)}


def submitter(node: FakeNode, **changes: Any) -> Submitter:
    pool = EndpointPool([cast(EvmEndpoint, node)], chain="fake")
    return Submitter(pool, settings(**changes), KEY, "relayer")


def test_nonce_manager_counts_up_and_rereads_after_resync() -> None:
    """Consecutive nonces from one read; resync makes the next reserve read the chain again."""
    reads: list[int] = []
    chain = {"count": 3}

    async def count() -> int:
        reads.append(chain["count"])
        return chain["count"]

    async def main() -> None:
        nonces = NonceManager(count)
        assert sorted(await asyncio.gather(*(nonces.reserve() for _ in range(5)))) == [
            3,
            4,
            5,
            6,
            7,
        ]
        assert len(reads) == 1
        chain["count"] = 5  # two transactions never reached the pool
        nonces.resync()
        assert await nonces.reserve() == 5
        assert len(reads) == 2

    asyncio.run(main())


def test_fees_and_replacement_bumps() -> None:
    """Initial caps are 2 × base fee + tip; a replacement raises both by ≥ 12.5 % (rounded up,
    at least 1 wei) and never pays less than a fresh transaction would."""
    fees = initial_fees(1_000, 100)
    assert fees == Fees(max_fee_per_gas=2_100, max_priority_fee_per_gas=100)
    bumped = bumped_fees(fees)
    assert bumped.max_fee_per_gas >= fees.max_fee_per_gas * 1.125
    assert bumped.max_priority_fee_per_gas >= fees.max_priority_fee_per_gas * 1.125
    assert bumped_fees(Fees(9, 0)) == Fees(max_fee_per_gas=11, max_priority_fee_per_gas=1)
    assert bumped_fees(Fees(7, 7)).max_priority_fee_per_gas == 8  # 7.875 rounds up
    fresh = initial_fees(5_000, 100)
    assert bumped_fees(fees, fresh).max_fee_per_gas == 10_100


def test_transaction_is_signed_with_margin_and_fees() -> None:
    """Gas = estimate × margin, caps from the latest base fee, the pending nonce, this chain id."""
    node = FakeNode()

    async def main() -> None:
        submission, _ = await submitter(node, gas_margin=1.5).submit(b"\x01\x02", "test")
        assert submission.tx_hash.startswith("0x")
        assert submission.height == 16
        assert submission.gas_used == 40_000

    asyncio.run(main())
    (raw,) = node.sent
    assert fields(raw) == {
        "chain_id": 31337,
        "nonce": 7,
        "tip": 100,
        "max_fee": 2_100,
        "gas": 75_000,
    }


def test_stuck_transaction_is_replaced_with_the_same_nonce_and_higher_fees() -> None:
    """No receipt after half the receipt timeout: the same nonce is sent again with fees bumped
    by at least 12.5 %, and the replacement's receipt completes the submission."""
    node = FakeNode()
    node.mine_on = 2

    async def main() -> None:
        submission, _ = await submitter(node, receipt_timeout=0.6).submit(b"\x01", "test")
        assert submission.tx_hash == "0x" + keccak256(bytes.fromhex(node.sent[1][2:])).hex()

    asyncio.run(main())
    first, second = (fields(raw) for raw in node.sent)
    assert first["nonce"] == second["nonce"] == 7
    assert second["tip"] * 8 >= first["tip"] * 9
    assert second["max_fee"] * 8 >= first["max_fee"] * 9


def test_no_receipt_is_a_timeout_and_the_nonce_is_read_again() -> None:
    """A transaction never mined: ChainTimeout after receipt_timeout; the next submission reads
    the pending count again instead of trusting the local counter."""
    node = FakeNode()
    node.mine_on = None

    async def main() -> None:
        sender = submitter(node, receipt_timeout=0.3)
        with pytest.raises(ChainTimeout, match="no receipt"):
            await sender.submit(b"\x01", "test")
        node.mine_on = 3
        await sender.submit(b"\x01", "test")

    asyncio.run(main())
    assert node.count_reads == 2


def test_send_error_resyncs_the_nonce() -> None:
    """eth_sendRawTransaction fails on every endpoint (HTTP 502): the transaction is offered
    again while polling and mined; a nonce that our transaction never consumed (someone else
    used it: "nonce too low", latest count past it) is NotFound naming the hash, and the next
    submission uses the chain's pending count, not the burnt local nonce."""
    node = FakeNode()
    node.send_errors = [ChainUnavailable("eth_sendRawTransaction: HTTP 502", chain="fake")]

    async def main() -> None:
        sender = submitter(node, receipt_timeout=1.0)
        first, _ = await sender.submit(b"\x01", "test")
        assert first.tx_hash == "0x" + keccak256(bytes.fromhex(node.sent[0][2:])).hex()
        node.send_errors = [node._error(-32000, "nonce too low")]
        node.latest = node.pending + 1
        with pytest.raises(NotFound, match="consumed, by none of our transactions") as caught:
            await sender.submit(b"\x02", "test")
        assert node.healthy  # a refusal is not an endpoint fault
        node.latest = None
        node.pending = 11
        node.mine_on = len(node.sent) + 1
        await sender.submit(b"\x03", "test")
        assert re.search(r"0x[0-9a-f]{64}", str(caught.value))  # the refused hash is named

    asyncio.run(main())
    assert fields(node.sent[-1])["nonce"] == 11


def test_refused_replacement_of_a_mined_transaction_is_not_an_error() -> None:
    """The original is mined but no endpoint shows its receipt yet; the replacement is refused
    ("nonce too low") by every endpoint: no endpoint is marked unhealthy and the original's
    receipt, once served, completes the submission (it was reported failed before, so the
    relay sent the message again)."""
    nodes = [FakeNode(), FakeNode()]
    for n, node in enumerate(nodes):
        node.name = node.url = f"{URL}-{n}"
    hidden = {"receipts": True}

    def shared_call(node: FakeNode) -> Any:
        real = node.call

        async def call(method: str, params: Sequence[Any]) -> Any:
            if method == "eth_getTransactionReceipt" and hidden["receipts"]:
                return None
            if method == "eth_sendRawTransaction" and nodes[0].sent:
                raise node._error(-32000, "nonce too low")
            if method == "eth_sendRawTransaction":
                nodes[1].sent.append(params[0])  # one mempool
            return await real(method, params)

        return call

    for node in nodes:
        node.call = shared_call(node)  # type: ignore[method-assign]

    async def main() -> None:
        pool = EndpointPool([cast(EvmEndpoint, n) for n in nodes], chain="fake")
        sender = Submitter(pool, settings(receipt_timeout=2.0), KEY, "relayer")
        task = asyncio.create_task(sender.submit(b"\x01", "test"))
        await asyncio.sleep(1.7)  # polls at 1.55 s (replacement refused twice), then 2.55 s
        hidden["receipts"] = False
        submission, _ = await task
        assert submission.tx_hash == "0x" + keccak256(bytes.fromhex(nodes[0].sent[0][2:])).hex()
        assert [n.healthy for n in nodes] == [True, True]

    asyncio.run(main())


def test_reverts_are_rejections_with_reasons() -> None:
    """A revert at estimation is RejectedByChain with the gateway's custom error decoded; a
    status-0 receipt is RejectedByChain with the reason from replaying the call."""
    node = FakeNode()
    node.estimate_error = node._error(
        3,
        "execution reverted",
        "0x" + keccak256(b"UnknownSeal(uint64)")[:4].hex() + "0" * 62 + "07",
    )

    async def main() -> None:
        sender = submitter(node)
        with pytest.raises(RejectedByChain, match=r"UnknownSeal\(7\)"):
            await sender.submit(b"\x01", "requeue")
        assert node.sent == []
        node.estimate_error = None
        node.status = "0x0"
        with pytest.raises(RejectedByChain, match="boom"):
            await sender.submit(b"\x01", "test")

    asyncio.run(main())


def test_settings_hide_keys() -> None:
    """Keys never appear in repr (logs, tracebacks)."""
    text = repr(settings(sender_key=KEY))
    assert KEY.hex() not in text
    assert "relayer_key" not in text
    with pytest.raises(ValueError, match="finality_tag"):
        settings(finality_tag="latest")


def test_a_receipt_for_another_transaction_is_refused() -> None:
    """An endpoint answering eth_getTransactionReceipt with the receipt of another transaction
    never completes the submission; the timeout names it."""
    node = FakeNode()
    real = node._receipt

    def other(tx_hash: str) -> dict[str, Any] | None:
        receipt = real(tx_hash)
        return None if receipt is None else dict(receipt, transactionHash="0x" + "ab" * 32)

    node._receipt = other  # type: ignore[method-assign]

    async def main() -> None:
        with pytest.raises(ChainTimeout, match=f"got one of 0xabab.*{URL}"):
            await submitter(node, receipt_timeout=0.5).submit(b"\x01", "test")

    asyncio.run(main())


def test_gas_is_estimated_with_fees_and_never_below_the_batch_bound() -> None:
    """eth_estimateGas sees the real fee fields (a receiver checking tx.gasprice == 0 cannot
    tell the estimate apart); the limit is max(estimate × margin, min_gas), at most the block
    gas limit; the bound covers each callee's allowance × 64/63 + CALL_RESERVE_GAS."""
    node = FakeNode()

    async def main() -> None:
        sender = submitter(node)
        await sender.submit(b"\x01", "deliverMessages", min_gas=700_000)
        node.mine_on = 2
        await sender.submit(b"\x01", "deliverMessages", min_gas=90_000_000)

    asyncio.run(main())
    assert node.estimates[0]["maxFeePerGas"] == hex(2_100)
    assert node.estimates[0]["maxPriorityFeePerGas"] == hex(100)
    assert [fields(raw)["gas"] for raw in node.sent] == [700_000, 30_000_000]
    assert batch_gas_bound(100, [300_000, 300_000]) > 2 * (300_000 * 64 // 63 + 10_000)
    assert batch_gas_bound(10_000, [0]) > batch_gas_bound(100, [0]) + 16 * 9_900


def test_insufficient_gas_is_retryable_not_a_rejection() -> None:
    """The gateway's InsufficientGas at estimation, or a receipt that used its whole gas limit,
    is a retryable AdapterError (more gas or a smaller batch helps), never RejectedByChain."""
    node = FakeNode()
    node.estimate_error = node._error(
        3, "execution reverted", "0x" + keccak256(b"InsufficientGas()")[:4].hex()
    )

    async def main() -> None:
        sender = submitter(node)
        with pytest.raises(AdapterError, match="InsufficientGas") as caught:
            await sender.submit(b"\x01", "deliverMessages")
        assert not isinstance(caught.value, RejectedByChain)
        assert caught.value.retryable
        node.estimate_error = None
        node.status = "0x0"
        node.gas_used = 60_000  # = 50,000 × 1.2: all of it
        with pytest.raises(AdapterError, match="ran out of gas") as caught:
            await sender.submit(b"\x01", "deliverMessages")
        assert not isinstance(caught.value, RejectedByChain)

    asyncio.run(main())
