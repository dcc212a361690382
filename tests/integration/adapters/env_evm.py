"""The EVM chain environment: Anvil with the gateway and PingPong deployed, and an EvmAdapter.

Dev account 0 owns the contracts, 1 is the relayer, 3 the adapter's sender account; 2 and 4+ are
users. The gateway's chain name is ``anvil-test`` and it accepts itself as a destination, so one
Anvil plays both ends of a route.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.grammar import TupleType, parse

from adapters.evm.adapter import EvmAdapter
from adapters.evm.rpc import EvmEndpoint
from adapters.evm.settings import EvmSettings
from devnet.anvil import Anvil, start_anvil
from tests.integration.adapters.env import ChainEnv
from verifier.hashing import keccak256

CHAIN = "anvil-test"
ARTIFACTS = Path(__file__).resolve().parents[3] / "contracts" / "artifacts.json"
RECEIVER_GAS = 300_000
ACK_GAS = 100_000
MAX_PAYLOAD = 65536
CONFIRMATIONS = 2


def _artifact(name: str) -> dict[str, Any]:
    contracts: dict[str, Any] = json.loads(ARTIFACTS.read_text(encoding="utf-8"))["contracts"]
    return dict(contracts[name])


def _types(signature: str) -> list[str]:
    """``f(a,b)`` or ``(a,b)`` -> ``["a", "b"]`` (tuples kept whole)."""
    parsed = parse(signature[signature.index("(") :])
    assert isinstance(parsed, TupleType)
    return [c.to_type_str() for c in parsed.components]


class AnvilDriver:
    """Test-side access to Anvil through its unlocked dev accounts."""

    def __init__(self, anvil: Anvil, confirmations: int) -> None:
        self.anvil = anvil
        self.confirmations = confirmations
        self.rpc = EvmEndpoint(anvil.url, chain=CHAIN, chain_id=anvil.chain_id, call_timeout=30.0)

    def address(self, account: int) -> str:
        return self.anvil.accounts[account].address

    async def send(self, tx: dict[str, Any]) -> dict[str, Any]:
        tx_hash = await self.rpc.call("eth_sendTransaction", [tx])
        for _ in range(200):
            receipt = await self.rpc.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                return dict(receipt)
            await asyncio.sleep(0.02)
        raise AssertionError(f"no receipt for {tx_hash}")

    async def deploy(self, name: str, args: Sequence[Any] = ()) -> bytes:
        artifact = _artifact(name)
        constructor = [e for e in artifact["abi"] if e["type"] == "constructor"]
        types = [i["type"] for i in constructor[0]["inputs"]] if constructor else []
        code = artifact["bytecode"].removeprefix("0x") + encode(types, list(args)).hex()
        receipt = await self.send({"from": self.address(0), "data": "0x" + code})
        assert receipt["status"] == "0x1", f"deploying {name} failed"
        return bytes.fromhex(receipt["contractAddress"][2:])

    async def transact(
        self, to: bytes, signature: str, args: Sequence[Any] = (), *, account: int = 2
    ) -> tuple[str, bool]:
        data = keccak256(signature.encode())[:4] + encode(_types(signature), list(args))
        tx = {
            "from": self.address(account),
            "to": "0x" + to.hex(),
            "data": "0x" + data.hex(),
            "gas": hex(3_000_000),  # no estimate: a reverting call is mined with status 0
        }
        receipt = await self.send(tx)
        return receipt["transactionHash"], receipt["status"] == "0x1"

    async def call(self, to: bytes, signature: str, args: Sequence[Any], returns: str) -> Any:
        data = keccak256(signature.encode())[:4] + encode(_types(signature), list(args))
        raw = await self.rpc.call("eth_call", [{"to": "0x" + to.hex(), "data": "0x" + data.hex()}])
        values = decode(_types(returns), bytes.fromhex(raw[2:]))
        return values[0] if len(values) == 1 else values

    async def finalize(self) -> None:
        await self.mine(self.confirmations)

    async def mine(self, blocks: int) -> None:
        await self.rpc.call("anvil_mine", [hex(blocks)])

    async def head(self) -> int:
        return int(await self.rpc.call("eth_blockNumber", []), 16)

    async def block(self, tag: int | str = "latest") -> dict[str, Any]:
        number = hex(tag) if isinstance(tag, int) else tag
        return dict(await self.rpc.call("eth_getBlockByNumber", [number, False]))

    async def timestamp(self) -> int:
        return int((await self.block())["timestamp"], 16)

    async def close(self) -> None:
        await self.rpc.close()


@dataclass
class EvmChainEnv(ChainEnv):
    settings: EvmSettings
    anvil: Anvil
    evm: AnvilDriver

    def adapter_with(self, **changes: Any) -> EvmAdapter:
        """A new adapter whose settings differ by ``changes``; the caller closes it."""
        return EvmAdapter(dataclasses.replace(self.settings, **changes))


@asynccontextmanager
async def evm_env(**settings: Any) -> AsyncIterator[EvmChainEnv]:
    """Anvil with the gateway and PingPong deployed; ``settings`` override EvmSettings fields."""
    anvil = start_anvil(port=0)
    driver = AnvilDriver(anvil, settings.get("confirmations", CONFIRMATIONS))
    adapters: list[EvmAdapter] = []
    try:
        gateway = await driver.deploy("CrossChainGateway", [CHAIN, 1, RECEIVER_GAS, ACK_GAS])
        await driver.transact(gateway, "addRelayer(address)", [driver.address(1)], account=0)
        await driver.transact(
            gateway, "setDestination(string,uint32)", [CHAIN, MAX_PAYLOAD], account=0
        )
        ping_pong = await driver.deploy("PingPong", [gateway])
        await driver.transact(ping_pong, "allowPeer(string,address)", [CHAIN, ping_pong], account=0)
        config = EvmSettings(
            **{
                "chain": CHAIN,
                "chain_id": anvil.chain_id,
                "endpoints": (anvil.url,),
                "gateway": gateway,
                "relayer_key": bytes.fromhex(anvil.accounts[1].private_key[2:]),
                "sender_key": bytes.fromhex(anvil.accounts[3].private_key[2:]),
                "confirmations": CONFIRMATIONS,
                "call_timeout": 5.0,
                "receipt_timeout": 20.0,
                **settings,
            }
        )

        def new_adapter() -> EvmAdapter:
            adapter = EvmAdapter(config)
            adapters.append(adapter)
            return adapter

        yield EvmChainEnv(
            chain=CHAIN,
            gateway=gateway,
            hasher=keccak256,
            adapter=new_adapter(),
            new_adapter=new_adapter,
            driver=driver,
            ping_pong=ping_pong,
            trust={
                "family": "evm",
                "chain_id": anvil.chain_id,
                "gateway": "0x" + gateway.hex(),
                "confirmations": config.confirmations,
            },
            settings=config,
            anvil=anvil,
            evm=driver,
        )
    finally:
        for adapter in adapters:
            await adapter.close()
        await driver.close()
        _stop(anvil)


def _stop(anvil: Anvil) -> None:
    """Stop Anvil and close its output pipe once the thread draining it has seen the end."""
    anvil.stop()
    for thread in threading.enumerate():
        if thread.name == "anvil-output":
            thread.join(timeout=2.0)
    if anvil.process.stdout is not None:
        anvil.process.stdout.close()
