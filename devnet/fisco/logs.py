"""``getLogs`` (JSON-RPC, 3.9+): parameters and matching of the node's filter system.

Sources (FISCO-BCOS v3.9.0): ``bcos-rpc/filter/FilterRequest.cpp::fromJson`` (required keys,
``blockhash``, at most 4 topics), ``bcos-rpc/util.cpp::getBlockNumberByTag`` (tags or 0x-hex),
``bcos-rpc/filter/FilterSystem.cpp::getLogsImpl`` (range check, clamping to the head) and
``bcos-rpc/filter/LogMatcher.cpp`` (exact string comparison of ``0x``-prefixed address/topics).
"""

from __future__ import annotations

import re
from typing import Any

from devnet.fisco.chain import Chain
from devnet.fisco.errors import GROUP_NOT_EXIST, INVALID_PARAMS, INVALID_REQUEST, RpcError
from devnet.fisco.params import as_string, hash_param
from devnet.fisco.views import log_json

MAX_TOPICS = 4  # EVENT_LOG_TOPICS_MAX_INDEX
_LATEST_TAGS = ("latest", "safe", "finalized", "pending")
_QUANTITY = re.compile(r"0x[0-9a-fA-F]+")
_NOT_OBJECT = "in Json::Value::find(begin, end): requires objectValue or nullValue"
_NOT_ARRAY = "in Json::Value::operator[](ArrayIndex)const: requires arrayValue"


def _block_tag(value: Any, latest: int) -> tuple[int, bool]:
    """(block number, is-latest) of a tag or a 0x-hex quantity."""
    tag = as_string(value)
    if tag == "earliest":
        return 0, False
    if tag in _LATEST_TAGS:
        return latest, True
    if _QUANTITY.fullmatch(tag):
        return int(tag, 16), False
    raise RpcError(INVALID_PARAMS, f"Invalid Block Number: {tag}")


def _strings(value: Any) -> set[str]:
    if isinstance(value, list):
        return {as_string(v) for v in value}
    return {as_string(value)}


def _topics(value: Any) -> list[set[str]]:
    size = len(value) if isinstance(value, list | dict) else 0  # size() of a scalar is 0
    if size > MAX_TOPICS:
        raise RpcError(INVALID_PARAMS, "exceed max topics")
    if isinstance(value, dict) and size:
        raise RpcError(INVALID_REQUEST, _NOT_ARRAY)
    items = value if isinstance(value, list) else []
    return [set() if item is None else _strings(item) for item in items]


def _require(query: dict[str, Any], key: str) -> Any:
    if query.get(key) is None:
        raise RpcError(INVALID_PARAMS, f"{key} is null")
    return query[key]


def get_logs(chain: Chain, group: str, query: Any) -> list[dict[str, Any]]:
    if query is not None and not isinstance(query, dict):
        raise RpcError(INVALID_REQUEST, _NOT_OBJECT)
    query = query or {}
    for key in ("fromBlock", "toBlock", "address", "topics"):
        _require(query, key)
    latest = chain.block_number
    start, start_latest = _block_tag(query["fromBlock"], latest)
    end, end_latest = _block_tag(query["toBlock"], latest)
    addresses = _strings(query["address"])
    topics = _topics(query["topics"])
    block_hash = as_string(query.get("blockhash"))
    if group and group != chain.config.group_id:
        raise RpcError(
            GROUP_NOT_EXIST,
            f"group not exist,chain={chain.config.chain_id},group={group},commond=getLogsImpl",
        )
    if block_hash:
        numbers = [_block_by_hash(chain, block_hash)]
    else:
        if not start_latest and not end_latest and end < start:
            raise RpcError(INVALID_PARAMS, "invalid block range params")
        if start_latest and not end_latest:
            raise RpcError(INVALID_PARAMS, "invalid block range params")
        numbers = list(range(start, min(end, latest) + 1))
    return _collect(chain, numbers, addresses, topics)


def _block_by_hash(chain: Chain, text: str) -> int:
    try:
        number = chain.ledger.number_by_hash(hash_param(text).hex())
    except RpcError:
        number = None
    if number is None:
        raise RpcError(INVALID_PARAMS, "unknown block")
    return number


def _collect(
    chain: Chain, numbers: list[int], addresses: set[str], topics: list[set[str]]
) -> list[dict[str, Any]]:
    result = []
    for number in numbers:
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


def _matches(log: list[Any], addresses: set[str], topics: list[set[str]]) -> bool:
    address, log_topics, _ = log
    if addresses and "0x" + address not in addresses:
        return False
    if len(topics) > len(log_topics):
        return False
    pairs = zip(topics, log_topics, strict=False)
    return all(not wanted or "0x" + have in wanted for wanted, have in pairs)
