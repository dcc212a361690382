"""``getLogs``: eth-style log objects filtered like ``bcos-rpc/filter/LogMatcher.cpp``."""

from __future__ import annotations

from typing import Any

from devnet.fisco.chain import Chain
from devnet.fisco.errors import INVALID_PARAMS, RpcError
from devnet.fisco.views import log_json

MAX_RANGE = 5000


def _block_number(value: Any, latest: int) -> int:
    if value is None or value in ("latest", "pending", ""):
        return latest
    if value == "earliest":
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value.startswith("0x") else int(value)
        except ValueError:
            pass
    raise RpcError(INVALID_PARAMS, "invalid block number")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value.lower()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.lower() for v in value]
    raise RpcError(INVALID_PARAMS, "invalid filter")


def get_logs(chain: Chain, query: Any) -> list[dict[str, Any]]:
    if not isinstance(query, dict):
        raise RpcError(INVALID_PARAMS, "invalid filter params")
    latest = chain.block_number
    if query.get("blockHash"):
        number = chain.ledger.number_by_hash(str(query["blockHash"]).lower().removeprefix("0x"))
        if number is None:
            return []
        start = end = number
    else:
        start = _block_number(query.get("fromBlock"), latest)
        end = min(_block_number(query.get("toBlock"), latest), latest)
    if end - start > MAX_RANGE:
        raise RpcError(INVALID_PARAMS, "exceed max block range")
    addresses = [a.removeprefix("0x") for a in _as_list(query.get("address"))]
    raw_topics = query.get("topics") or []
    if not isinstance(raw_topics, list):
        raise RpcError(INVALID_PARAMS, "invalid topics")
    topics = [_as_list(t) for t in raw_topics]
    result = []
    for number in range(max(start, 1), end + 1):
        block = chain.ledger.block(number)
        if block is None:
            continue
        for tx_index, tx_hash in enumerate(block["txs"]):
            receipt = chain.ledger.receipt(tx_hash)
            assert receipt is not None
            for log_index, log in enumerate(receipt["logs"]):
                if _matches(log, addresses, topics):
                    result.append(log_json(block, tx_index, log_index, log))
    return result


def _matches(log: list[Any], addresses: list[str], topics: list[list[str]]) -> bool:
    address, log_topics, _ = log
    if addresses and address not in addresses:
        return False
    if len(topics) > len(log_topics):
        return False
    for wanted, have in zip(topics, log_topics, strict=False):
        if wanted and "0x" + have not in wanted:
            return False
    return True
