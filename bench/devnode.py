"""Devnode throughput: Store.set (writes storage, emits an event) per second, and send->receipt ms.

Run: ``.venv/bin/python -m bench.devnode [--txs 400] [--concurrency 32]``. Not a timed test;
numbers depend on the machine (2 cores here). One run prints both figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from adapters.fisco.transaction import build_transaction, sign_transaction, transaction_hex
from devnet.fisco.node import DevNodeOptions, DevNodeThread
from verifier.hashing import CryptoSuite, keccak256

_ARTIFACTS = Path(__file__).resolve().parents[1] / "contracts" / "artifacts.json"
_KEY = keccak256(b"devnode bench key")


def _rpc(url: str, method: str, params: list[Any]) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(answer["error"])
    return answer["result"]


def _tx(to: str, data: bytes, limit: int, abi: str = "") -> str:
    tx = build_transaction(
        chain_id="chain0", group_id="group0", block_limit=limit, to=to, input=data, abi=abi
    )
    return transaction_hex(sign_transaction(tx, _KEY, CryptoSuite.KECCAK256_SECP256K1))


def _timed_send(url: str, tx: str) -> float:
    start = time.perf_counter()
    receipt = _rpc(url, "sendTransaction", ["group0", "", tx, False])
    assert receipt["status"] == 0, receipt
    assert receipt["logEntries"], receipt
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--txs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--block-interval-ms", type=int, default=100)
    args = parser.parse_args()
    store = json.loads(_ARTIFACTS.read_text())["contracts"]["Store"]
    options = DevNodeOptions(port=0, block_interval_ms=args.block_interval_ms, seed="bench")
    with DevNodeThread(options) as node:
        url = node.url
        limit = _rpc(url, "getBlockNumber", ["group0", ""]) + 900
        deploy = _tx("", bytes.fromhex(store["bytecode"][2:]), limit, json.dumps(store["abi"]))
        address = _rpc(url, "sendTransaction", ["group0", "", deploy, False])["contractAddress"]
        selector = keccak256(b"set(uint256)")[:4]
        txs = [_tx(address, selector + i.to_bytes(32, "big"), limit) for i in range(args.txs)]
        single = [
            _timed_send(url, _tx(address, selector + (10**6 + i).to_bytes(32, "big"), limit))
            for i in range(10)
        ]
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            latencies = list(pool.map(lambda tx: _timed_send(url, tx), txs))
        elapsed = time.perf_counter() - start
        blocks = _rpc(url, "getBlockNumber", ["group0", ""])
    print(
        f"Store.set (SSTORE x2 + LOG3), {args.txs} txs, {args.concurrency} concurrent senders, "
        f"block interval {args.block_interval_ms} ms, {blocks} blocks in total"
    )
    print(f"throughput: {args.txs / elapsed:.0f} tx/s")
    print(
        f"send->receipt under load: p50 {statistics.median(latencies):.0f} ms, "
        f"p95 {statistics.quantiles(latencies, n=20)[18]:.0f} ms"
    )
    print(
        f"send->receipt, one at a time: p50 {statistics.median(single):.0f} ms "
        f"(waits for the next block: up to one interval, plus execution)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
