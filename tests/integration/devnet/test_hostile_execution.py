"""Hostile contracts and transactions: an endless loop stalls neither other clients nor a stop,
unsupported transaction versions are refused, block.timestamp is in milliseconds."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from adapters.fisco.transaction import build_transaction, sign_transaction, transaction_hex
from devnet.fisco.errors import TransactionStatus
from devnet.fisco.evm import NODE_TX_GAS_LIMIT
from devnet.fisco.node import DevNode, DevNodeOptions, DevNodeThread
from tests.integration.devnet.client import CLIENT_KEY, SUITE, RpcClient, selector, uint
from tests.integration.devnet.hostile import (
    DEPLOY_ENDLESS_LOOP,
    DEPLOY_TIMESTAMP,
    ENDLESS_LOOP,
    devnode_process,
    tars_transaction,
)

pytestmark = pytest.mark.integration
TIME_CAP_S = 2.0


@pytest.fixture(name="capped", scope="module")
def _capped() -> Iterator[DevNode]:
    """A devnode with the real node's 3e9 gas per transaction: only the 2 s wall-clock cap
    per block or call stops an endless loop."""
    options = DevNodeOptions(
        port=0,
        block_interval_ms=20,
        seed="hostile-execution",
        tx_gas_limit=NODE_TX_GAS_LIMIT,
        block_time_limit_s=TIME_CAP_S,
    )
    with DevNodeThread(options) as node:
        yield node


def _answered_while(pending: Future[Any], url: str) -> int:
    """getBlockNumber from a second client while ``pending`` is still running."""
    time.sleep(0.3)  # the loop is executing by now (20 ms blocks)
    answers = 0
    while answers < 5:
        assert isinstance(RpcClient(url).call("getBlockNumber"), int)
        answers += 1
    assert not pending.done(), "the hostile request finished before the other client asked"
    return answers


def test_endless_loop_transaction_does_not_block_others(capped: DevNode) -> None:
    """An endless-loop deploy runs out of (wall-clock) gas in ~2 s; meanwhile another client
    is answered, and a transaction sent during the loop lands in the next block."""
    client = RpcClient(capped.url)
    store = client.deploy("Store")
    with ThreadPoolExecutor(2) as pool:
        loop = pool.submit(RpcClient(capped.url).send, "", ENDLESS_LOOP)
        assert _answered_while(loop, capped.url) == 5
        honest = pool.submit(RpcClient(capped.url).send, store, selector("set(uint256)") + uint(7))
        receipt = loop.result(timeout=60)
        assert receipt["status"] == TransactionStatus.OUT_OF_GAS
        assert int(receipt["gasUsed"]) == NODE_TX_GAS_LIMIT
        follower = honest.result(timeout=60)
    assert follower["status"] == 0
    assert follower["blockNumber"] > receipt["blockNumber"]


def test_endless_loop_call_is_capped(capped: DevNode) -> None:
    """``call`` into an endless loop ends with status 12 within the cap, others answered."""
    client = RpcClient(capped.url)
    address = client.send("", DEPLOY_ENDLESS_LOOP)["contractAddress"]
    assert client.call("getCode", address) == "0x5b600056"
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(RpcClient(capped.url).call, "call", address, "0x")
        _answered_while(call, capped.url)
        result = call.result(timeout=60)
    assert result["status"] == TransactionStatus.OUT_OF_GAS


def test_gas_cap_bounds_a_loop(client: RpcClient) -> None:
    """The per-transaction gas cap (default 30M, shown as the tx_gas_limit system config) ends
    an endless loop out of gas, having used exactly the cap."""
    assert client.call("getSystemConfigByKey", "tx_gas_limit")["value"] == "30000000"
    options = DevNodeOptions(port=0, block_interval_ms=20, seed="gas-cap", tx_gas_limit=500_000)
    with DevNodeThread(options) as node:
        receipt = RpcClient(node.url).send("", ENDLESS_LOOP)
    assert (receipt["status"], receipt["gasUsed"]) == (12, "500000")


def test_sigterm_stops_node_inside_endless_loop() -> None:
    """SIGTERM while a 3e9-gas loop runs (no wall-clock cap to speak of): exit 0 within 5 s,
    and another client was answered during the loop."""
    args = ("--tx-gas-limit", str(NODE_TX_GAS_LIMIT), "--block-time-limit-ms", "600000")
    with devnode_process(*args, "--block-interval-ms", "20") as node, ThreadPoolExecutor(1) as pool:
        client = RpcClient(node.url)
        loop = pool.submit(_send_quietly, client, "", ENDLESS_LOOP)
        _answered_while(loop, node.url)
        started = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
        loop.result(timeout=30)
    assert not any("Traceback" in line for line in node.stderr_lines), node.stderr_lines


def _send_quietly(client: RpcClient, to: str, data: bytes) -> None:
    """Send; the node stopping mid-request (an error answer or a closed connection) is fine."""
    with contextlib.suppress(OSError, AssertionError):
        client.send(to, data)


@pytest.mark.parametrize("version", [1, 2, -1, 2**31 - 1])
def test_unsupported_versions_refused(client: RpcClient, version: int) -> None:
    """Versions other than 0 hash more fields: refused as MalformTx, never admitted."""
    raw = "0x" + tars_transaction(version, block_limit=client.call("getBlockNumber") + 10).hex()
    response = client.request("sendTransaction", ["group0", "", raw, False])
    assert response["error"] == {"code": 10003, "message": "MalformTx"}


def test_signed_version_one_transaction_refused(client: RpcClient, store_address: str) -> None:
    """A properly signed version-1 transaction (the SDK's hash) is refused, not executed."""
    before = client.call("getTotalTransactionCount")["transactionCount"]
    data = build_transaction(
        chain_id="chain0",
        group_id="group0",
        block_limit=client.call("getBlockNumber") + 10,
        to=store_address,
        input=selector("set(uint256)") + uint(1),
        version=1,
    )
    tx = transaction_hex(sign_transaction(data, CLIENT_KEY, SUITE))
    response = client.request("sendTransaction", ["group0", "", tx, False])
    assert response["error"] == {"code": 10003, "message": "MalformTx"}
    assert client.call("getTotalTransactionCount")["transactionCount"] == before


@pytest.mark.parametrize("version", [2**40, -(2**40), 2**31])
def test_version_beyond_int32_is_a_decoding_error(
    client: RpcClient, caplog: pytest.LogCaptureFixture, version: int
) -> None:
    """A version wider than TARS int32 is the decoder's error (-1), with no traceback logged."""
    raw = "0x" + tars_transaction(version).hex()
    with caplog.at_level(logging.WARNING):
        response = client.request("sendTransaction", ["group0", "", raw, False])
    code, message = response["error"]["code"], response["error"]["message"]
    assert code == -1
    assert "int32" in message
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_block_timestamp_is_milliseconds(client: RpcClient) -> None:
    """block.timestamp in a transaction equals its block header's timestamp (ms), as on a real
    node; a call sees milliseconds too."""
    address = client.send("", DEPLOY_TIMESTAMP)["contractAddress"]
    receipt = client.send(address, b"")
    header = client.call("getBlockByNumber", receipt["blockNumber"], True)
    assert int(receipt["output"], 16) == header["timestamp"]
    assert header["timestamp"] > 10**12  # milliseconds since 1970, not seconds
    called = int(client.call("call", address, "0x")["output"], 16)
    assert abs(called - time.time() * 1000) < 60_000


def test_stop_answers_waiting_senders() -> None:
    """Stopping the node with transactions in the pool answers their senders with an error."""
    options = DevNodeOptions(port=0, block_interval_ms=20, seed="stop-pool")
    thread = DevNodeThread(options)
    node = thread.__enter__()
    client = RpcClient(node.url)
    node.pause()
    tx = client.tx_hex("", ENDLESS_LOOP)
    answers: list[Any] = []
    sender = threading.Thread(target=lambda: answers.append(_request_or_error(client, tx)))
    sender.start()
    deadline = time.monotonic() + 10
    while client.call("getPendingTxSize") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    thread.__exit__(None, None, None)
    sender.join(timeout=10)
    assert not sender.is_alive()
    assert answers
    assert answers[0] != "result"


def _request_or_error(client: RpcClient, tx: str) -> str:
    try:
        response = client.request("sendTransaction", ["group0", "", tx, False])
    except OSError:
        return "closed"
    return "result" if "result" in response else "error"
