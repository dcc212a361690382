"""Group, node, peer, consensus and sync views (shapes from the node's docs; spec section 1.5)."""

from __future__ import annotations

from typing import Any

from devnet.fisco.chain import COMPATIBILITY_VERSION, Chain, quorum
from devnet.fisco.views import node_json_string

_BINARY_INFO = {
    "buildTime": "20230403 11:55:56",
    "gitCommitHash": "114364de7db1ba3c0461b3813621ce7caedc4f2f",
    "platform": "Linux/g++",
    "version": "3.3.0",
}
_SERVICES = [
    {"serviceName": "LedgerServiceObj", "type": 2},
    {"serviceName": "SchedulerServiceObj", "type": 3},
    {"serviceName": "FrontServiceObj", "type": 4},
    {"serviceName": "", "type": 6},
    {"serviceName": "", "type": 7},
    {"serviceName": "TxPoolServiceObj", "type": 8},
]


def node_info(chain: Chain) -> dict[str, Any]:
    """The local node's ChainNodeInfo (an Air node's group info knows no other node)."""
    node_id = chain.local_key.node_id
    ini = {
        "binaryInfo": _BINARY_INFO,
        "chainID": chain.config.chain_id,
        "gatewayServiceName": "",
        "groupID": chain.config.group_id,
        "isAuthCheck": False,
        "isSerialExecute": True,
        "isWasm": False,
        "nodeID": node_id,
        "nodeName": node_id,
        "rpcServiceName": "",
        "smCryptoType": False,
    }
    return {
        "iniConfig": node_json_string(ini),
        "microService": False,
        "name": node_id,
        "nodeID": node_id,
        "protocol": {
            "compatibilityVersion": COMPATIBILITY_VERSION,
            "maxSupportedVersion": 1,
            "minSupportedVersion": 0,
        },
        "serviceInfo": _SERVICES,
        "type": 1,
    }


def group_info(chain: Chain) -> dict[str, Any]:
    genesis = {
        "blockTxCountLimit": 1000,
        "consensusLeaderPeriod": 1,
        "consensusType": "pbft",
        "sealerList": [{"nodeID": k.node_id, "weight": 1} for k in chain.keys],
        "txGasLimit": 3000000000,
    }
    return {
        "chainID": chain.config.chain_id,
        "genesisConfig": node_json_string(genesis),
        "groupID": chain.config.group_id,
        "iniConfig": "",
        "nodeList": [node_info(chain)],
    }


def sealer_list(chain: Chain) -> list[dict[str, Any]]:
    return [{"nodeID": k.node_id, "weight": 1} for k in chain.keys]


def consensus_status(chain: Chain) -> str:
    count = len(chain.keys)
    number = chain.block_number
    block = chain.ledger.block(number)
    status = {
        "blockNumber": number,
        "changeCycle": 0,
        "connectedNodeList": count,
        "consensusNodeList": [
            {"index": i, "nodeID": k.node_id, "weight": 1} for i, k in enumerate(chain.keys)
        ],
        "consensusNodesNum": count,
        "hash": block["hash"] if block else "",
        "index": 0,
        "isConsensusNode": True,
        "leaderIndex": (number + 1) % count,
        "maxFaultyQuorum": (count - 1) // 3,
        "minRequiredQuorum": quorum(count),
        "nodeID": chain.local_key.node_id,
        "timeout": False,
        "view": 0,
    }
    return node_json_string(status)


def sync_status(chain: Chain) -> str:
    number = chain.block_number
    latest = chain.ledger.block(number)
    genesis = chain.ledger.block(0)
    latest_hash = latest["hash"] if latest else ""
    genesis_hash = genesis["hash"] if genesis else ""

    def peer(index: int) -> dict[str, Any]:
        return {
            "archivedBlockNumber": 0,
            "blockNumber": number,
            "genesisHash": genesis_hash,
            "latestHash": latest_hash,
            "nodeID": chain.keys[index].node_id,
        }

    status = dict(
        peer(0),
        isSyncing=False,
        knownHighestNumber=number,
        knownLatestHash=latest_hash,
        peers=[peer(i) for i in range(1, len(chain.keys))],
    )
    return node_json_string(status)


def peers(chain: Chain) -> dict[str, Any]:
    """``gatewayInfoToJson``: each Air gateway hosts one node of the group."""
    ids = [k.node_id for k in chain.keys]

    def gateway(index: int, end_point: str) -> dict[str, Any]:
        hosted = [{"group": chain.config.group_id, "nodeIDList": [ids[index]]}]
        return {"endPoint": end_point, "groupNodeIDInfo": hosted, "p2pNodeID": ids[index]}

    local = gateway(0, "0.0.0.0:30300")
    local["peers"] = [gateway(i, f"127.0.0.1:{30300 + i}") for i in range(1, len(ids))]
    return local


SYSTEM_CONFIG = {
    "tx_count_limit": "1000",
    "tx_gas_limit": "3000000000",
    "consensus_leader_period": "1",
    "compatibility_version": "3.3.0",
    "auth_check_status": "0",
}
