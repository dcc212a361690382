"""Two real chains for the pipeline tests, and a GatewayNode built from a plain description.

Anvil (automine, confirmations = 1, and a background task that mines a block every 0.1 s so
that facts become final) and the FISCO devnode, each with the gateway contract, the other chain
registered as a destination, and an ``EchoReceiver`` and a ``RevertingReceiver``. The node is
described by a JSON-able dict (:func:`describe`) so that the crash-point tests can build the same
node in a subprocess (``pipeline_runner.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from adapters.base import ChainAdapter, Fact, FactKind
from adapters.evm.adapter import EvmAdapter
from adapters.evm.settings import EvmSettings
from adapters.fisco.adapter import FiscoAdapter
from adapters.fisco.settings import FiscoEndpoint, FiscoSettings
from relay.audit import AuditKey, AuditLog, CheckpointPolicy
from relay.node import GatewayNode
from relay.pipeline import PipelineSettings
from relay.sqlite_store import SqliteStore
from relay.trust import ConfiguredTrustStore, EvmTrustConfig, FiscoTrustConfig, TrustConfig
from relay.verify import FactVerifier
from tests.integration.adapters.env import ChainEnv, read_all
from tests.integration.adapters.env_evm import EvmChainEnv, evm_env
from tests.integration.adapters.env_fisco import (
    RELAYER,
    SENDER,
    SUITE,
    account_key,
    driver_of,
    fisco_env,
)

CAP = 4096


@dataclass
class Chains:
    evm: EvmChainEnv
    fisco: ChainEnv
    echo: dict[str, bytes]
    reverter: dict[str, bytes]

    @property
    def envs(self) -> dict[str, ChainEnv]:
        return {self.evm.chain: self.evm, self.fisco.chain: self.fisco}


async def _mine_forever(env: EvmChainEnv) -> None:
    while True:
        await env.evm.mine(1)
        await asyncio.sleep(0.1)


@asynccontextmanager
async def two_chains() -> AsyncIterator[Chains]:
    async with evm_env(confirmations=1) as evm, fisco_env(seed="relay-pipeline") as fisco:
        for env, other in ((evm, fisco), (fisco, evm)):
            _, ok = await env.driver.transact(
                env.gateway, "setDestination(string,uint32)", [other.chain, CAP], account=0
            )
            assert ok, "setDestination"
        echo = {e.chain: await e.driver.deploy("EchoReceiver") for e in (evm, fisco)}
        reverter = {e.chain: await e.driver.deploy("RevertingReceiver") for e in (evm, fisco)}
        miner = asyncio.create_task(_mine_forever(evm))
        try:
            yield Chains(evm, fisco, echo, reverter)
        finally:
            miner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await miner


async def describe(chains: Chains, data_dir: Path, **settings: Any) -> dict[str, Any]:
    """Everything a node needs, as JSON: chains' endpoints, gateways, keys, start heights."""
    node = driver_of(chains.fisco).node
    fisco_adapter = cast(FiscoAdapter, chains.fisco.adapter)
    evm = chains.evm
    return {
        "data_dir": str(data_dir),
        "evm": {
            "chain": evm.chain,
            "url": evm.anvil.url,
            "chain_id": evm.anvil.chain_id,
            "gateway": evm.gateway.hex(),
            "relayer_key": (evm.settings.relayer_key or b"").hex(),
            "sender_key": evm.settings.sender_key.hex() if evm.settings.sender_key else None,
            "start": (await evm.adapter.status()).head,
        },
        "fisco": {
            "chain": chains.fisco.chain,
            "url": node.url,
            "chain_id": node.chain_id,
            "group_id": node.group_id,
            "gateway": chains.fisco.gateway.hex(),
            "sealers": [[n, w] for n, w in fisco_adapter.settings.sealers],
            "start": (await chains.fisco.adapter.status()).head,
        },
        "settings": {
            "batch_size": 50,
            "batch_wait": 0.2,
            "queue_bound": 1000,
            "retry_initial": 0.2,
            "retry_max": 2.0,
            "stuck_after": 60.0,
            "max_blocks": 1000,
            "poll_interval": 0.1,
            "recheck_after": 10.0,
            **settings,
        },
    }


def build_node(d: dict[str, Any]) -> GatewayNode:
    e, f = d["evm"], d["fisco"]
    evm_settings = EvmSettings(
        chain=e["chain"],
        chain_id=e["chain_id"],
        endpoints=(e["url"],),
        gateway=bytes.fromhex(e["gateway"]),
        relayer_key=bytes.fromhex(e["relayer_key"]),
        sender_key=bytes.fromhex(e["sender_key"]) if e["sender_key"] else None,
        confirmations=1,
        call_timeout=5.0,
        receipt_timeout=20.0,
    )
    sealers = tuple((str(n), int(w)) for n, w in f["sealers"])
    fisco_settings = FiscoSettings(
        chain=f["chain"],
        endpoints=(FiscoEndpoint(f["url"]),),
        chain_id=f["chain_id"],
        group_id=f["group_id"],
        gateway=bytes.fromhex(f["gateway"]),
        sealers=sealers,
        crypto=SUITE,
        relayer_key=account_key(RELAYER),
        sender_key=account_key(SENDER),
        call_timeout=5.0,
        receipt_timeout=30.0,
        seal_interval=0.2,
    )
    configs: dict[str, TrustConfig] = {
        e["chain"]: EvmTrustConfig(
            chain=e["chain"],
            gateway=bytes.fromhex(e["gateway"]),
            chain_id=e["chain_id"],
            endpoints=(e["url"],),
            quorum=1,
            confirmations=1,
            finality_tag=None,
        ),
        f["chain"]: FiscoTrustConfig(
            chain=f["chain"],
            crypto=SUITE,
            gateway=bytes.fromhex(f["gateway"]),
            chain_id=f["chain_id"],
            group_id=f["group_id"],
            sealers=tuple((n.lower().removeprefix("0x"), w) for n, w in sealers),
        ),
    }
    adapters: dict[str, ChainAdapter] = {
        e["chain"]: EvmAdapter(evm_settings),
        f["chain"]: FiscoAdapter(fisco_settings),
    }
    trust = ConfiguredTrustStore(configs)
    audit = d.get("audit")  # {"key": PATH, "every": N}: the audit trail, as gateway run has it
    audit_log = (
        AuditLog("node", AuditKey.load(Path(audit["key"])), CheckpointPolicy(audit["every"], 60))
        if audit
        else None
    )
    return GatewayNode(
        store=SqliteStore(Path(d["data_dir"]), audit_log=audit_log),
        adapters=adapters,
        verifier=FactVerifier(trust, configs),
        closers=[trust.close],
        routes=[(e["chain"], f["chain"]), (f["chain"], e["chain"])],
        settings=PipelineSettings(**d["settings"]),
        start_heights={e["chain"]: e["start"], f["chain"]: f["start"]},
    )


async def on_chain_counts(chains: Chains, start: dict[str, int]) -> dict[str, dict[bytes, int]]:
    """How many MessageDelivered and MessageAcknowledged events each id has on the chains,
    read from ``start`` heights with fresh adapters (after forcing a last FISCO seal)."""
    counts: dict[str, dict[bytes, int]] = {"delivered": {}, "acknowledged": {}}
    for chain, env in chains.envs.items():
        adapter = env.new_adapter()
        while await adapter.seal(force=True) is not None:
            pass
        await env.driver.finalize()
        facts: list[Fact]
        facts, _ = await read_all(adapter, adapter.initial_cursor(start[chain]))
        for fact in facts:
            key = {FactKind.DELIVERY_RESULT: "delivered", FactKind.ACKNOWLEDGED: "acknowledged"}
            if fact.kind in key:
                bucket = counts[key[fact.kind]]
                bucket[fact.id] = bucket.get(fact.id, 0) + 1
    return counts
