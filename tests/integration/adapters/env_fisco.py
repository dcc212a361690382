"""The FISCO BCOS environment of the adapter suite: an in-process devnode (4 sealers, 20 ms
blocks) with CrossChainGateway("fisco-test", 1000, 300000, 100000), the relayer registered, the
chain its own destination, a PingPong allowed to talk to itself, and a FiscoAdapter for it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.grammar import TupleType, parse

from adapters.fisco.adapter import FiscoAdapter
from adapters.fisco.evidence import trust_for
from adapters.fisco.rpc import FiscoRpcClient
from adapters.fisco.settings import FiscoEndpoint, FiscoSettings
from adapters.fisco.transaction import (
    account_address,
    build_transaction,
    sign_transaction,
    transaction_hex,
)
from devnet.fisco.node import DevNode, DevNodeOptions
from tests.integration.adapters.env import ChainEnv
from verifier.hashing import CryptoSuite, keccak256

ARTIFACTS = Path(__file__).resolve().parents[3] / "contracts" / "artifacts.json"
CHAIN = "fisco-test"
SUITE = CryptoSuite.KECCAK256_SECP256K1
RELAYER, SENDER = 1, 9
PAYLOAD_CAP = 4096


def account_key(index: int) -> bytes:
    """Dev account ``index``: 0 owner, 1 relayer, 2+ users (9 is the adapter's sender)."""
    return keccak256(f"fisco-env-account-{index}".encode())


def account(index: int) -> bytes:
    return bytes.fromhex(account_address(account_key(index), SUITE)[2:])


def artifact(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ARTIFACTS.read_text())["contracts"][name]
    return data


def arg_types(signature: str) -> list[str]:
    """``f(uint64,(string,bytes)[])`` -> ``["uint64", "(string,bytes)[]"]``."""
    inner = signature[signature.index("(") :]
    if inner == "()":
        return []
    parsed = parse(inner)
    assert isinstance(parsed, TupleType)
    return [c.to_type_str() for c in parsed.components]


class FiscoDriver:
    """Test-only access to the devnode, with the dev accounts' keys."""

    def __init__(self, node: DevNode) -> None:
        self.node = node
        self.rpc = FiscoRpcClient(
            FiscoEndpoint(node.url), chain=CHAIN, group=node.group_id, timeout=60.0
        )

    async def send_raw(
        self, to: str, data: bytes, *, abi: str = "", account: int = 2, nonce: str | None = None
    ) -> dict[str, Any]:
        head = await self.rpc.call("getBlockNumber")
        tx = build_transaction(
            chain_id=self.node.chain_id,
            group_id=self.node.group_id,
            block_limit=head + 500,
            to=to,
            input=data,
            abi=abi,
            nonce=nonce,
        )
        signed = sign_transaction(tx, account_key(account), SUITE)
        receipt: dict[str, Any] = await self.rpc.call(
            "sendTransaction", transaction_hex(signed), False
        )
        return receipt

    async def deploy(self, name: str, args: Sequence[Any] = ()) -> bytes:
        art = artifact(name)
        ctor: dict[str, Any] = next(
            (e for e in art["abi"] if e["type"] == "constructor"), {"inputs": []}
        )
        types = [i["type"] for i in ctor["inputs"]]
        code = bytes.fromhex(art["bytecode"][2:]) + abi_encode(types, list(args))
        receipt = await self.send_raw("", code, abi=json.dumps(art["abi"]), account=0)
        assert receipt["status"] == 0, receipt
        return bytes.fromhex(receipt["contractAddress"][2:])

    async def transact(
        self, to: bytes, signature: str, args: Sequence[Any] = (), *, account: int = 2
    ) -> tuple[str, bool]:
        receipt = await self.transact_receipt(to, signature, args, account=account)
        return str(receipt["transactionHash"]), receipt["status"] == 0

    async def transact_receipt(
        self, to: bytes, signature: str, args: Sequence[Any] = (), *, account: int = 2
    ) -> dict[str, Any]:
        data = keccak256(signature.encode())[:4] + abi_encode(arg_types(signature), list(args))
        return await self.send_raw("0x" + to.hex(), data, account=account)

    async def call(self, to: bytes, signature: str, args: Sequence[Any], returns: str) -> Any:
        data = keccak256(signature.encode())[:4] + abi_encode(arg_types(signature), list(args))
        answer = await self.rpc.call("call", "0x" + to.hex(), "0x" + data.hex())
        assert answer["status"] == 0, answer
        return abi_decode([returns], bytes.fromhex(answer["output"][2:]))[0]

    async def finalize(self) -> None:
        """PBFT: committed blocks are final."""

    async def timestamp(self) -> int:
        head = await self.rpc.call("getBlockNumber")
        block = await self.rpc.call("getBlockByNumber", head, True, True)
        return int(block["timestamp"]) // 1000

    async def close(self) -> None:
        await self.rpc.close()


def settings_for(node: DevNode, gateway: bytes, **changes: Any) -> FiscoSettings:
    settings = FiscoSettings(
        chain=CHAIN,
        endpoints=(FiscoEndpoint(node.url),),
        chain_id=node.chain_id,
        group_id=node.group_id,
        gateway=gateway,
        sealers=tuple((k.node_id, 1) for k in node.sealer_keys),
        crypto=SUITE,
        relayer_key=account_key(RELAYER),
        sender_key=account_key(SENDER),
        call_timeout=5.0,
        receipt_timeout=30.0,
    )
    return replace(settings, **changes)


@asynccontextmanager
async def fisco_env(seed: str = "adapter-tests") -> AsyncIterator[ChainEnv]:
    node = DevNode(DevNodeOptions(port=0, block_interval_ms=20, seed=seed))
    await node.start()
    driver = FiscoDriver(node)
    adapters: list[FiscoAdapter] = []
    try:
        gateway = await driver.deploy("CrossChainGateway", (CHAIN, 1000, 300_000, 100_000))
        for signature, args in (
            ("addRelayer(address)", [account(RELAYER)]),
            ("setDestination(string,uint32)", [CHAIN, PAYLOAD_CAP]),
        ):
            _, ok = await driver.transact(gateway, signature, args, account=0)
            assert ok, signature
        ping_pong = await driver.deploy("PingPong", (gateway,))
        _, ok = await driver.transact(
            ping_pong, "allowPeer(string,address)", [CHAIN, ping_pong], account=0
        )
        assert ok
        settings = settings_for(node, gateway)

        def new_adapter() -> FiscoAdapter:
            adapter = FiscoAdapter(settings)
            adapters.append(adapter)
            return adapter

        yield ChainEnv(
            chain=CHAIN,
            gateway=gateway,
            hasher=keccak256,
            adapter=new_adapter(),
            new_adapter=new_adapter,
            driver=driver,
            ping_pong=ping_pong,
            trust=trust_for(settings, keccak256),
        )
    finally:
        for adapter in adapters:
            await adapter.close()
        await driver.close()
        await node.stop()


# Helpers shared by the FISCO adapter test modules (one devnode per module).
SEALED_TOPIC = "0x" + keccak256(b"Sealed(uint64,bytes32[],bytes32[])").hex()
SENT_TOPIC = (
    "0x"
    + keccak256(b"MessageSent(bytes32,string,string,uint64,address,address,bytes,uint64)").hex()
)


def driver_of(env: ChainEnv) -> FiscoDriver:
    return cast(FiscoDriver, env.driver)


def adapter_with(env: ChainEnv, *urls: str, **changes: Any) -> FiscoAdapter:
    """The env's adapter with other endpoints (and other settings)."""
    adapter = cast(FiscoAdapter, env.adapter)
    endpoints = tuple(FiscoEndpoint(u) for u in urls)
    return FiscoAdapter(replace(adapter.settings, endpoints=endpoints, **changes))


async def head(env: ChainEnv) -> int:
    return int(await driver_of(env).rpc.call("getBlockNumber"))
