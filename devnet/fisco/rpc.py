# ruff: noqa: N802, ARG002  (handler names mirror the RPC method names; params is uniform)
"""The JSON-RPC 3.x method table (``JsonRpcInterface.h``) and the response envelope."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from devnet.fisco import info, views
from devnet.fisco.chain import Chain
from devnet.fisco.errors import (
    GET_STORAGE_ERROR,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MSG_INVALID_REQUEST,
    MSG_METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
    group_not_exist,
)
from devnet.fisco.logs import get_logs
from devnet.fisco.params import as_bool, as_int64, as_str, decode_hex
from verifier.encoding import load_json
from verifier.errors import MalformedEvidence

_log = logging.getLogger(__name__)

Handler = Callable[[list[Any]], Awaitable[Any]]


class RpcDispatcher:
    def __init__(self, chain: Chain, submit_timeout_s: float = 60.0) -> None:
        self.chain = chain
        self.submit_timeout_s = submit_timeout_s
        self.methods: dict[str, Handler] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")
        }

    async def handle(self, body: bytes) -> bytes:
        """One request body in, the node's response bytes out; never raises."""
        response: dict[str, Any] = {"id": 0, "jsonrpc": "2.0"}
        try:
            request = _parse_request(body)
            response = {"id": request["id"], "jsonrpc": request["jsonrpc"]}
            handler = self.methods.get(request["method"])
            if handler is None:
                raise RpcError(METHOD_NOT_FOUND, MSG_METHOD_NOT_FOUND)
            response["result"] = await handler(request["params"])
        except RpcError as exc:
            response["error"] = {"code": exc.code, "message": exc.message}
        except Exception:  # a devnode bug: answer like the node's catch-all, no stack trace
            _log.exception("rpc_handler_failed")
            response.pop("result", None)
            response["error"] = {"code": INTERNAL_ERROR, "message": "Internal error"}
        return json.dumps(response, sort_keys=True, separators=(",", ":")).encode()

    def _group(self, params: list[Any], command: str) -> None:
        group = as_str(params, 0)
        if group != self.chain.config.group_id:
            raise group_not_exist(self.chain.config.chain_id, group, command)

    # ---- ledger --------------------------------------------------------------------------
    async def rpc_getBlockNumber(self, params: list[Any]) -> Any:
        self._group(params, "getBlockNumber")
        return self.chain.block_number

    async def rpc_getBlockByNumber(self, params: list[Any]) -> Any:
        self._group(params, "getBlockByNumber")
        number = as_int64(params, 2)
        only_header, only_hash = as_bool(params, 3, True), as_bool(params, 4, True)
        block = self.chain.ledger.block(number)
        if block is None:
            raise RpcError(GET_STORAGE_ERROR, f"getBlockByNumber: block {number} not found")
        return views.block_json(self.chain.ledger, block, only_header, only_hash)

    async def rpc_getBlockByHash(self, params: list[Any]) -> Any:
        self._group(params, "getBlockByHash")
        text = as_str(params, 2)
        number = self.chain.ledger.number_by_hash(text.removeprefix("0x"))
        if number is None:
            raise RpcError(GET_STORAGE_ERROR, f"getBlockByHash: block {text} not found")
        block = self.chain.ledger.block(number)
        assert block is not None
        return views.block_json(
            self.chain.ledger, block, as_bool(params, 3, True), as_bool(params, 4, True)
        )

    async def rpc_getBlockHashByNumber(self, params: list[Any]) -> Any:
        self._group(params, "getBlockHashByNumber")
        block = self.chain.ledger.block(as_int64(params, 2))
        return views.ZERO if block is None else "0x" + block["hash"]

    async def rpc_getTransaction(self, params: list[Any]) -> Any:
        self._group(params, "getTransaction")
        tx = self._tx(as_str(params, 2))
        result = views.transaction_json(tx)
        if as_bool(params, 3):
            result["transactionProof"] = []
            result["txProof"] = views.tx_proof(self.chain.ledger, tx)
        return result

    async def rpc_getTransactionReceipt(self, params: list[Any]) -> Any:
        self._group(params, "getTransactionReceipt")
        tx = self._tx(as_str(params, 2))
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

    def _tx(self, text: str) -> dict[str, Any]:
        tx = self.chain.ledger.transaction(text.removeprefix("0x"))
        if tx is None:
            raise RpcError(GET_STORAGE_ERROR, f"transaction {text} not found")
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
        if key not in info.SYSTEM_CONFIG:
            raise RpcError(GET_STORAGE_ERROR, f"getSystemConfigByKey: unknown key {key}")
        return {"blockNumber": 0, "value": info.SYSTEM_CONFIG[key]}

    async def rpc_getLogs(self, params: list[Any]) -> Any:
        self._group(params, "getLogs")
        return get_logs(self.chain, params[1] if len(params) > 1 else None)

    # ---- execution ------------------------------------------------------------------------
    async def rpc_sendTransaction(self, params: list[Any]) -> Any:
        self._group(params, "sendTransaction")
        raw = decode_hex(as_str(params, 2))
        require_proof = as_bool(params, 3)
        tx = self.chain.admit(raw)
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
        status, output = self.chain.call(as_str(params, 2), decode_hex(as_str(params, 3)))
        return {
            "blockNumber": self.chain.block_number,
            "output": "0x" + output.hex(),
            "status": status,
        }

    async def rpc_getCode(self, params: list[Any]) -> Any:
        self._group(params, "getCode")
        return "0x" + self.chain.get_code(as_str(params, 2)).hex()

    async def rpc_getABI(self, params: list[Any]) -> Any:
        self._group(params, "getABI")
        address = as_str(params, 2).lower().removeprefix("0x")
        return self.chain.ledger.abi(address) or ""

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
        self._group(params, "getGroupPeers")
        return [k.node_id for k in self.chain.keys[1:]]

    async def rpc_getGroupList(self, params: list[Any]) -> Any:
        return {"code": 0, "groupList": [self.chain.config.group_id], "msg": "success"}

    async def rpc_getGroupInfo(self, params: list[Any]) -> Any:
        self._group(params, "getGroupInfo")
        return info.group_info(self.chain)

    async def rpc_getGroupInfoList(self, params: list[Any]) -> Any:
        return [info.group_info(self.chain)]

    async def rpc_getGroupNodeInfo(self, params: list[Any]) -> Any:
        self._group(params, "getGroupNodeInfo")
        name = as_str(params, 1)
        ids = [k.node_id for k in self.chain.keys]
        return info.node_info(self.chain, ids.index(name) if name in ids else 0)


async def _bounded(future: Awaitable[dict[str, Any]], timeout_s: float) -> dict[str, Any]:
    try:
        async with asyncio.timeout(timeout_s):
            return await future
    except TimeoutError as exc:
        raise RpcError(10010, "TransactionPoolTimeout") from exc


def _parse_request(body: bytes) -> dict[str, Any]:
    """``parseRpcRequestJson``: any defect is -32600 with one fixed message."""
    try:
        root = load_json(body, what="request")
    except MalformedEvidence as exc:
        raise RpcError(INVALID_REQUEST, MSG_INVALID_REQUEST) from exc
    if not isinstance(root, dict) or "jsonrpc" not in root or "method" not in root:
        raise RpcError(INVALID_REQUEST, MSG_INVALID_REQUEST)
    if "params" not in root or not isinstance(root["params"], list):
        raise RpcError(INVALID_REQUEST, MSG_INVALID_REQUEST)
    try:
        return {
            "jsonrpc": as_str([root["jsonrpc"]], 0),
            "method": as_str([root["method"]], 0),
            "id": as_int64([root.get("id")], 0),
            "params": root["params"],
        }
    except RpcError as exc:  # jsoncpp conversion errors surface as a parse error here
        raise RpcError(PARSE_ERROR, "Invalid JSON was received by the server.") from exc
