"""The node's error codes, as the real RPC returns them.

Sources (FISCO-BCOS): ``bcos-framework/protocol/TransactionStatus.h`` (txpool codes and their
``operator<<`` names), ``bcos-rpc/jsonrpc/JsonRpcInterface.cpp`` (envelope errors),
``bcos-rpc/jsonrpc/JsonRpcImpl_2_0.cpp`` (sendTransaction error paths),
``bcos-txpool/txpool/validator/TxValidator.cpp`` (check order).
"""

from __future__ import annotations

from enum import IntEnum

from verifier.errors import GatewayError


class TransactionStatus(IntEnum):
    NONE = 0
    UNKNOWN = 1
    OUT_OF_GAS_LIMIT = 2
    BAD_INSTRUCTION = 10
    BAD_JUMP_DESTINATION = 11
    OUT_OF_GAS = 12
    OUT_OF_STACK = 13
    STACK_UNDERFLOW = 14
    PRECOMPILED_ERROR = 15
    REVERT_INSTRUCTION = 16
    CONTRACT_ADDRESS_ALREADY_USED = 17
    CALL_ADDRESS_ERROR = 19
    NONCE_CHECK_FAIL = 10000
    BLOCK_LIMIT_CHECK_FAIL = 10001
    TX_POOL_IS_FULL = 10002
    MALFORM = 10003
    ALREADY_IN_TX_POOL = 10004
    TX_ALREADY_IN_CHAIN = 10005
    INVALID_CHAIN_ID = 10006
    INVALID_GROUP_ID = 10007
    INVALID_SIGNATURE = 10008


# ``operator<<(ostream, TransactionStatus)``: the message the RPC error carries.
STATUS_NAMES: dict[TransactionStatus, str] = {
    TransactionStatus.NONCE_CHECK_FAIL: "NonceCheckFail",
    TransactionStatus.BLOCK_LIMIT_CHECK_FAIL: "BlockLimitCheckFail",
    TransactionStatus.TX_POOL_IS_FULL: "TxPoolIsFull",
    TransactionStatus.MALFORM: "MalformTx",
    TransactionStatus.ALREADY_IN_TX_POOL: "AlreadyInTxPool",
    TransactionStatus.TX_ALREADY_IN_CHAIN: "TxAlreadyInChain",
    TransactionStatus.INVALID_CHAIN_ID: "InvalidChainId",
    TransactionStatus.INVALID_GROUP_ID: "InvalidGroupId",
    TransactionStatus.INVALID_SIGNATURE: "InvalidSignature",
}

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
NODE_NOT_EXIST = -32000  # JsonRpcError::NodeNotExistOrNotStarted
GROUP_NOT_EXIST = -32005
# bcos-ledger/src/libledger/utilities/Common.h: LedgerError
ERROR_ARGUMENT = 3003
COLLECT_ASYNC_CALLBACK_ERROR = 3006
GET_STORAGE_ERROR = 3008

MSG_INVALID_REQUEST = "The JSON sent is not a valid Request object."
MSG_METHOD_NOT_FOUND = "The method does not exist/is not available."
# What ``boost::diagnostic_information`` prints for the factory's std::invalid_argument, minus
# the first line (source path and line of the throw), which depends on the node's build.
MSG_HASH_MISMATCH = (
    "Dynamic exception type: boost::wrapexcept<std::invalid_argument>\n"
    "std::exception::what: transaction hash mismatching\n"
)


class DevnodeError(GatewayError):
    """Root of the devnode's own errors."""


class RpcError(DevnodeError):
    """An error the node answers with: a JSON-RPC ``error`` object."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class MalformedTransaction(DevnodeError):
    """The TARS bytes do not decode to a transaction."""


class ExecutionCancelled(DevnodeError):
    """The node is stopping: running EVM code, decoding and pending requests are abandoned."""


def rejected(status: TransactionStatus) -> RpcError:
    return RpcError(int(status), STATUS_NAMES.get(status, "Unknown"))


def node_not_exist(command: str, chain_id: str, group: str, node: str) -> RpcError:
    """``JsonRpcImpl_2_0::getNodeService``: the message is LOG_DESC plus ``,key=value`` pairs."""
    return RpcError(
        NODE_NOT_EXIST,
        "Invalid request for the specified node of doesn't exist or doesn't started!"
        f",request={command},chain={chain_id},group={group},node={node}",
    )


def group_not_exist(group: str) -> RpcError:
    """The ``getGroupInfo`` check of sendTransaction, getTransactionReceipt, getCode, getABI."""
    return RpcError(GROUP_NOT_EXIST, f"The group {group} does not exist!")
