# ruff: noqa: N802, ARG002  (handler names mirror the RPC method names; params is uniform)
"""The JSON-RPC 3.x method table (``JsonRpcInterface.h``) and the response envelope."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from devnet.fisco import info, views
from devnet.fisco.chain import Chain, Decoded
from devnet.fisco.envelope import parse_request
from devnet.fisco.errors import (
    COLLECT_ASYNC_CALLBACK_ERROR,
    ERROR_ARGUMENT,
    GET_STORAGE_ERROR,
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    MSG_METHOD_NOT_FOUND,
    ExecutionCancelled,
    RpcError,
    group_not_exist,
    node_not_exist,
)
from devnet.fisco.logs import get_logs
from devnet.fisco.params import (
    as_bool,
    as_int64,
    as_str,
    decode_call_data,
    decode_hex,
    hash_param,
)
from devnet.fisco.workers import Workers

_log = logging.getLogger(__name__)

Handler = Callable[[list[Any]], Awaitable[Any]]


class RpcDispatcher:
    """Methods run on the event loop; decoding of large input and all EVM work go to workers."""

    def __init__(self, chain: Chain, workers: Workers, submit_timeout_s: float = 60.0) -> None:
        self.chain = chain
        self.workers = workers
        self.submit_timeout_s = submit_timeout_s
        self.methods: dict[str, Handler] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")
        }

    async def handle(self, body: bytes) -> bytes:
        """One request body in, the node's response bytes out; never raises."""
        response: dict[str, Any] = {"id": 0, "jsonrpc": "2.0"}
        try:
            request = await self.workers.decode(len(body), parse_request, body, self.workers.stop)
            response = {"id": request["id"], "jsonrpc": request["jsonrpc"]}
            handler = self.methods.get(request["method"])
            if handler is None:
                raise RpcError(METHOD_NOT_FOUND, MSG_METHOD_NOT_FOUND)
            response["result"] = await handler(request["params"])
        except RpcError as exc:
            response["error"] = {"code": exc.code, "message": exc.message}
        except ExecutionCancelled:  # the node is stopping: no stack trace for that
            response["error"] = {"code": INTERNAL_ERROR, "message": "Internal error"}
        except Exception:  # a devnode bug: answer like the node's catch-all, no stack trace
            _log.exception("rpc_handler_failed")
            response.pop("result", None)
            response["error"] = {"code": INTERNAL_ERROR, "message": "Internal error"}
        return json.dumps(response, sort_keys=True, separators=(",", ":")).encode()

    def _group(self, params: list[Any], command: str) -> None:
        """``getNodeService`` of an Air node: ``""`` is the default group, others must match."""
        group = as_str(params, 0)
        if group and group != self.chain.config.group_id:
            config = self.chain.config
            raise node_not_exist(command, config.chain_id, group, as_str(params, 1))

    def _group_info(self, params: list[Any]) -> None:
        """``m_groupManager->getGroupInfo``: an exact match, so ``""`` is no group here."""
        group = as_str(params, 0)
        if group != self.chain.config.group_id:
            raise group_not_exist(group)

    # ---- ledger --------------------------------------------------------------------------
    async def rpc_getBlockNumber(self, params: list[Any]) -> Any:
        self._group(params, "getBlockNumber")
        return self.chain.block_number

    async def rpc_getBlockByNumber(self, params: list[Any]) -> Any:
        self._group(params, "getBlockByNumber")
        number = as_int64(params, 2)
        only_header, only_hash = as_bool(params, 3, True), as_bool(params, 4, True)
        return self._block_by_number(number, only_header, only_hash)

    def _block_by_number(self, number: int, only_header: bool, only_hash: bool) -> Any:
        """``Ledger::asyncGetBlockDataByNumber``'s errors."""
        if number < 0:
            raise RpcError(ERROR_ARGUMENT, "Wrong argument")
        block = self.chain.ledger.block(number)
        if block is None:
            raise RpcError(COLLECT_ASYNC_CALLBACK_ERROR, "Get block failed with errors!")
        return views.block_json(self.chain.ledger, block, only_header, only_hash)

    async def rpc_getBlockByHash(self, params: list[Any]) -> Any:
        self._group(params, "getBlockByHash")
        block_hash = hash_param(as_str(params, 2))
        number = self.chain.ledger.number_by_hash(block_hash.hex())
        if number is None:
            raise RpcError(GET_STORAGE_ERROR, "GetBlockNumberByHash error ")
        return self._block_by_number(number, as_bool(params, 3, True), as_bool(params, 4, True))

    async def rpc_getBlockHashByNumber(self, params: list[Any]) -> Any:
        self._group(params, "getBlockHashByNumber")
        block = self.chain.ledger.block(as_int64(params, 2))
        return views.ZERO if block is None else "0x" + block["hash"]

    async def rpc_getTransaction(self, params: list[Any]) -> Any:
        tx_hash = hash_param(as_str(params, 2))  # parsed before the group is looked up
        self._group(params, "getTransaction")
        tx = self._tx(tx_hash, "GetBatchTxsByHashList error")
        result = views.transaction_json(tx)
        if as_bool(params, 3):
            result["transactionProof"] = []
            result["txProof"] = views.tx_proof(self.chain.ledger, tx)
        return result

    async def rpc_getTransactionReceipt(self, params: list[Any]) -> Any:
        tx_hash = hash_param(as_str(params, 2))
        self._group(params, "getTransactionReceipt")
        self._group_info(params)
        tx = self._tx(tx_hash, "GetTransactionReceiptByHash")
        receipt = self.chain.ledger.receipt(tx["hash"])
        assert receipt is not None
        result = views.receipt_json(receipt, tx["hash"])
        proof = as_bool(params, 3)
        if proof:
            result["receiptProof"] = []
            result["txReceiptProof"] = views.receipt_proof(self.chain.ledger, tx)
        tx_json = views.transaction_json(tx)
        for key in ("input", "from", "to", "extraData"):
            result[key] = tx_json[key]
        result["transactionProof"] = [] if proof else None
        return result

    def _tx(self, tx_hash: bytes, not_found: str) -> dict[str, Any]:
        tx = self.chain.ledger.transaction(tx_hash.hex())
        if tx is None:
            raise RpcError(GET_STORAGE_ERROR, not_found)
        return tx

    async def rpc_getTotalTransactionCount(self, params: list[Any]) -> Any:
        self._group(params, "getTotalTransactionCount")
        meta = self.chain.ledger.meta
        return {
            "blockNumber": self.chain.block_number,
            "failedTransactionCount": meta["failed"],
            "transactionCount": meta["total"],
        }

    async def rpc_getSystemConfigByKey(self, params: list[Any]) -> Any:
        self._group(params, "getSystemConfigByKey")
        key = as_str(params, 2)
        # The genesis says 3,000,000,000; like a chain whose admin lowered it since, the
        # system config gives the cap this devnode enforces.
        config = dict(info.SYSTEM_CONFIG, tx_gas_limit=str(self.chain.config.tx_gas_limit))
        if key not in config:
            raise RpcError(GET_STORAGE_ERROR, f"Entry: {key} does not exists!")
        return {"blockNumber": 0, "value": config[key]}

    async def rpc_getLogs(self, params: list[Any]) -> Any:
        query = params[1] if len(params) > 1 else None
        return await self.workers.read(get_logs, self.chain, as_str(params, 0), query)

    # ---- execution ------------------------------------------------------------------------
    async def rpc_sendTransaction(self, params: list[Any]) -> Any:
        self._group(params, "sendTransaction")
        self._group_info(params)
        text = as_str(params, 2)
        decoded = await self.workers.decode(len(text), _decode_transaction, text, self.workers.stop)
        require_proof = as_bool(params, 3)
        tx = self.chain.admit(decoded)
        receipt = await _bounded(self.chain.enqueue(tx), self.submit_timeout_s)
        committed = self.chain.ledger.transaction(tx["hash"])
        assert committed is not None
        result = views.receipt_json(receipt, tx["hash"], submit_ok=receipt["status"] == 0)
        result["to"] = tx["to"]
        result["from"] = "0x" + tx["from"]
        result["extraData"] = tx["extraData"]
        if require_proof:
            proof = views.receipt_proof(self.chain.ledger, committed)
            result["txReceiptProof"] = proof
            result["receiptProof"] = list(proof)
        return result

    async def rpc_call(self, params: list[Any]) -> Any:
        self._group(params, "call")
        text = as_str(params, 3)
        data = await self.workers.decode(len(text), decode_call_data, text)
        number, now = self.chain.block_number, self.chain.config.clock()
        status, output = await self.workers.execute(
            self.chain.call, as_str(params, 2), data, number, now
        )
        return {
            "blockNumber": self.chain.block_number,
            "output": "0x" + output.hex(),
            "status": status,
        }

    async def rpc_getCode(self, params: list[Any]) -> Any:
        self._group(params, "getCode")
        self._group_info(params)
        address = _contract_address(as_str(params, 2))
        code = await self.workers.execute(self.chain.get_code, address)
        return "0x" + code.hex() if code else ""

    async def rpc_getABI(self, params: list[Any]) -> Any:
        self._group(params, "getABI")
        self._group_info(params)
        return self.chain.ledger.abi(_contract_address(as_str(params, 2))) or ""

    # ---- consensus, group and network ---------------------------------------------------------
    async def rpc_getSealerList(self, params: list[Any]) -> Any:
        self._group(params, "getSealerList")
        return info.sealer_list(self.chain)

    async def rpc_getObserverList(self, params: list[Any]) -> Any:
        self._group(params, "getObserverList")
        return []

    async def rpc_getPbftView(self, params: list[Any]) -> Any:
        self._group(params, "getPbftView")
        return 0

    async def rpc_getPendingTxSize(self, params: list[Any]) -> Any:
        self._group(params, "getPendingTxSize")
        return self.chain.pending_count

    async def rpc_getSyncStatus(self, params: list[Any]) -> Any:
        self._group(params, "getSyncStatus")
        return info.sync_status(self.chain)

    async def rpc_getConsensusStatus(self, params: list[Any]) -> Any:
        self._group(params, "getConsensusStatus")
        return info.consensus_status(self.chain)

    async def rpc_getPeers(self, params: list[Any]) -> Any:
        return info.peers(self.chain)

    async def rpc_getGroupPeers(self, params: list[Any]) -> Any:
        # v3.3.0 collects every node ID the gateway knows (local node included) into a
        # std::set and never looks at the group parameter.
        return sorted(k.node_id for k in self.chain.keys)

    async def rpc_getGroupList(self, params: list[Any]) -> Any:
        return {"code": 0, "groupList": [self.chain.config.group_id], "msg": "success"}

    async def rpc_getGroupInfo(self, params: list[Any]) -> Any:
        if as_str(params, 0) != self.chain.config.group_id:
            return None
        return info.group_info(self.chain)

    async def rpc_getGroupInfoList(self, params: list[Any]) -> Any:
        return [info.group_info(self.chain)]

    async def rpc_getGroupNodeInfo(self, params: list[Any]) -> Any:
        # AirGroupManager::getNodeInfo: exact group, then the group's node named so (an Air
        # node's group holds only itself, named by its node ID).
        if as_str(params, 0) != self.chain.config.group_id:
            return None
        if as_str(params, 1) != self.chain.local_key.node_id:
            return None
        return info.node_info(self.chain)


def _contract_address(text: str) -> str:
    """getCode/getABI: strip ``0x``/``0X`` (solidity groups), then lower-case."""
    return (text[2:] if text[:2] in ("0x", "0X") else text).lower()


async def _bounded(future: Awaitable[dict[str, Any]], timeout_s: float) -> dict[str, Any]:
    try:
        async with asyncio.timeout(timeout_s):
            return await future
    except TimeoutError as exc:
        raise RpcError(10010, "TransactionPoolTimeout") from exc


def _decode_transaction(text: str, stop: threading.Event) -> Decoded:
    return Chain.decode(decode_hex(text), stop)
