"""Anchored audit checkpoints on a real Anvil: ``gateway deploy --audit-anchor --write``, the
EVM adapter's ``anchor``, relay/anchor.py's Anchorer over the store's real checkpoints, and
``gateway audit anchors`` on an honest export, on one the key's holder re-wrote and re-signed
(which ``gateway audit verify`` alone accepts), and on a truncated one.

The export is ``build_export`` of ``tests/unit/relay/test_audit.py`` (real SQLite, real bundles,
checkpoints at seq 4, 8, 12, 16, 20 of 21 records), its database opened as the gateway's store.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from adapters.evm.adapter import EvmAdapter
from adapters.fisco.adapter import FiscoAdapter
from adapters.fisco.transaction import account_address
from devnet.anvil import Anvil, AnvilError, start_anvil
from devnet.fisco.node import DevNodeOptions, DevNodeThread
from relay.anchor import Anchorer, checkpoint_digest, read_anchors
from relay.audit import AuditKey, Checkpoint, ExportEnd, canonical_json, sha256_hex
from relay.config import load_config
from relay.sqlite_store import DB_NAME, SqliteStore
from verifier.hashing import CryptoSuite

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
GATEWAY = str(Path(sys.executable).parent / "gateway")


def _builder() -> Callable[..., tuple[AuditKey, list[str]]]:
    spec = importlib.util.spec_from_file_location(
        "audit_fixtures_anchor", ROOT / "tests" / "unit" / "relay" / "test_audit.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    build: Callable[..., tuple[AuditKey, list[str]]] = module.build_export
    return build


@pytest.fixture(name="anvil", scope="module")
def _anvil() -> Iterator[Anvil]:
    try:
        chain = start_anvil(port=0, accounts=3)
    except AnvilError as exc:
        pytest.skip(str(exc))
    try:
        yield chain
    finally:
        chain.stop()
        if chain.process.stdout is not None:
            chain.process.stdout.close()


def _gateway(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GATEWAY, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture(name="world", scope="module")
def _world(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A config with the gateway and AuditAnchor deployed (--write), and the export's store."""
    folder = tmp_path_factory.mktemp("anchor")
    key, lines = _builder()(folder)
    (folder / "audit.db").rename(folder / DB_NAME)  # the store's file: the same tables
    key.save(folder / "audit.key", folder / "audit.pub")
    relayer, owner = anvil.accounts[1], anvil.accounts[2]
    path = folder / "gateway.toml"
    path.write_text(
        f"""[chains.anvil-test]
family = "evm"
endpoints = ["{anvil.url}"]
chain_id = {anvil.chain_id}
confirmations = 1
relayer_key = {{ env = "T_ANCHOR_RELAYER" }}
owner_key = {{ env = "T_ANCHOR_OWNER" }}

[audit]
key = "audit.key"
checkpoint_every = 4
"""
    )
    env = os.environ | {
        "T_ANCHOR_RELAYER": relayer.private_key,
        "T_ANCHOR_OWNER": owner.private_key,
    }
    for extra in ((), ("--audit-anchor",)):
        done = _gateway(
            "deploy", "--config", str(path), "--chain", "anvil-test", *extra, "--write",
            env=env, cwd=folder,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert f"anchors sent by {relayer.address}".lower() in done.stdout.lower()
    config = load_config(path)
    assert config.audit.anchor_chain == "anvil-test"
    assert config.audit.anchor_contract is not None
    return {
        "folder": folder,
        "key": key,
        "lines": lines,
        "config": config,
        "env": env,
        "relayer": relayer.address.lower(),
        "owner": owner.address.lower(),
        "contract": config.audit.anchor_contract,
        "url": anvil.url,
    }


@pytest.fixture(name="anchored", scope="module")
def _anchored(world: dict[str, Any]) -> dict[str, Any]:
    """Seq 8 anchored by hand from the adapter, then the Anchorer anchors the newest (20)."""
    return asyncio.run(_anchor_two(world))


async def _anchor_two(world: dict[str, Any]) -> dict[str, Any]:
    config = world["config"]
    chain = config.chains["anvil-test"]
    adapter = EvmAdapter(chain.evm_settings(world["env"]))
    store = SqliteStore(world["folder"])
    await store.open()
    try:
        contract = bytes.fromhex(world["contract"][2:])
        cp8 = await store.audit_checkpoint(8)
        assert cp8 is not None
        assert cp8.seq == 8
        by_hand = await adapter.anchor(
            contract, 8, bytes.fromhex(cp8.head_hash), checkpoint_digest(cp8)
        )
        anchorer = Anchorer(store, adapter, contract=contract, every=config.audit.anchor_every)
        submission = await anchorer.step()
        assert submission is not None
        assert await anchorer.step() is None  # nothing new since
        latest = await store.audit_checkpoint()
        assert latest is not None
    finally:
        await store.close()
        await adapter.close()
    return {"by_hand": by_hand, "submission": submission, "latest": latest}


async def test_the_adapter_and_the_anchorer_anchor_on_anvil(
    world: dict[str, Any], anchored: dict[str, Any]
) -> None:
    """Two Anchored events from the relayer's account: seq 8 and the newest checkpoint (20),
    each with its record's head hash and its checkpoint line's digest."""
    anchors = await read_anchors(world["url"], world["contract"], by=world["relayer"])
    latest: Checkpoint = anchored["latest"]
    assert latest.seq == 20
    assert [(a.seq, a.by) for a in anchors] == [(8, world["relayer"]), (20, world["relayer"])]
    assert anchors[1].head_hash == latest.head_hash
    assert anchors[1].checkpoint_digest == checkpoint_digest(latest).hex()
    assert anchors[1].tx_hash == anchored["submission"].tx_hash
    assert anchors[0].tx_hash == anchored["by_hand"].tx_hash
    assert await read_anchors(world["url"], world["contract"], by=world["owner"]) == []
    w3 = Web3(Web3.HTTPProvider(world["url"]))
    receipt = w3.eth.get_transaction_receipt(anchored["submission"].tx_hash)
    assert receipt["status"] == 1
    assert receipt["to"].lower() == world["contract"].lower()


def _write(folder: Path, name: str, objs: list[dict[str, Any]]) -> Path:
    path = folder / name
    path.write_text("\n".join(canonical_json(o).decode() for o in objs) + "\n")
    return path


def _resign(objs: list[dict[str, Any]], key: AuditKey) -> None:
    """What the audit key's holder can do: re-link and re-hash every record, re-sign every
    checkpoint and the export-end over the new hashes."""
    prev, hashes = "0" * 64, {}
    for o in objs:
        if o["type"] == "audit-record":
            o["prev_hash"] = prev
            o["hash"] = sha256_hex(canonical_json({k: v for k, v in o.items() if k != "hash"}))
            prev = hashes[o["seq"]] = o["hash"]
    for o in objs:
        if o["type"] == "checkpoint":
            fields = {k: o[k] for k in ("gateway", "seq", "time")}
            cp = Checkpoint(**fields, head_hash=hashes[o["seq"]])
            o.update(head_hash=cp.head_hash, signature=key.sign(cp.message()).hex())
        elif o["type"] == "export-end":
            records = [s for s in hashes if s >= o["from_seq"]]
            end = ExportEnd(
                gateway=o["gateway"],
                from_seq=o["from_seq"],
                seq=max(records),
                head_hash=hashes[max(records)],
                records=len(records),
                checkpoints=sum(x["type"] == "checkpoint" for x in objs),
                time=o["time"],
            )
            o.update(end.body())
            o["signature"] = key.sign(end.message()).hex()


def _anchors(world: dict[str, Any], path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _gateway(
        "audit", "anchors", str(path), "--key", "audit.pub", "--chain-url", world["url"],
        "--contract", world["contract"], "--by", world["relayer"], *extra,
        env=world["env"], cwd=world["folder"],
    )  # fmt: skip


def _verify(world: dict[str, Any], path: Path) -> subprocess.CompletedProcess[str]:
    return _gateway(
        "audit", "verify", str(path), "--key", "audit.pub", env=world["env"], cwd=world["folder"]
    )


@pytest.mark.usefixtures("anchored")
def test_an_honest_export_matches_every_anchor(world: dict[str, Any]) -> None:
    path = _write(world["folder"], "honest.jsonl", [json.loads(x) for x in world["lines"]])
    done = _anchors(world, path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 of 2 anchored checkpoint(s) match" in done.stdout
    report = json.loads(_anchors(world, path, "--json").stdout)
    assert report["valid"] is True
    assert [(a["seq"], a["status"]) for a in report["anchors"]] == [(8, "match"), (20, "match")]


@pytest.mark.usefixtures("anchored")
def test_a_rewritten_and_resigned_export_fails_at_the_first_anchor_after_the_edit(
    world: dict[str, Any],
) -> None:
    """Record 5 edited, the chain re-hashed and every signature re-made with the same key:
    ``audit verify`` cannot tell; the anchors of seq 8 and 20 can."""
    objs = [json.loads(x) for x in world["lines"]]
    record = next(o for o in objs if o["type"] == "audit-record" and o["seq"] == 5)
    assert record["tx_hash"] == "0xab"
    record["tx_hash"] = "0xcd"
    _resign(objs, world["key"])
    path = _write(world["folder"], "rewritten.jsonl", objs)
    verified = _verify(world, path)
    assert verified.returncode == 0, verified.stdout  # the attack the anchors defend against
    done = _anchors(world, path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "INVALID seq 8: history rewritten after it was anchored in tx" in done.stdout
    assert "INVALID seq 20:" in done.stdout
    report = json.loads(_anchors(world, path, "--json").stdout)
    assert [(a["seq"], a["status"]) for a in report["anchors"]] == [
        (8, "rewritten"),
        (20, "rewritten"),
    ]


@pytest.mark.usefixtures("anchored")
def test_a_truncated_export_fails_at_the_anchor_beyond_its_end(world: dict[str, Any]) -> None:
    """Records 17.. and checkpoint 20 cut, the export-end re-signed: verify accepts it, the
    anchor of seq 20 says records were cut off."""
    objs = [
        o
        for o in (json.loads(x) for x in world["lines"])
        if not (o["type"] in {"audit-record", "checkpoint"} and o["seq"] > 16)
    ]
    used = {
        o.get(name) for o in objs for name in ("evidence_digest", "trust_digest")
    }  # the evidence and trust lines of cut records go with them (else: unreferenced)
    objs = [o for o in objs if o["type"] not in {"evidence", "trust"} or o["digest"] in used]
    _resign(objs, world["key"])
    path = _write(world["folder"], "truncated.jsonl", objs)
    verified = _verify(world, path)
    assert verified.returncode == 0, verified.stdout
    done = _anchors(world, path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "INVALID seq 20:" in done.stdout
    assert "the export ends at seq 16: records were cut off" in done.stdout


@pytest.mark.usefixtures("anchored")
def test_an_export_that_does_not_verify_fails_before_the_chain_is_read(
    world: dict[str, Any],
) -> None:
    objs = [json.loads(x) for x in world["lines"]]
    next(o for o in objs if o["type"] == "audit-record" and o["seq"] == 5)["tx_hash"] = "0xcd"
    path = _write(world["folder"], "edited.jsonl", objs)
    done = _anchors(world, path)
    assert done.returncode == 1
    assert done.stdout.startswith("INVALID seq 5 [hash]")


def test_fisco_deploy_anchor_and_check_on_the_devnode(world: dict[str, Any]) -> None:
    """The same on the FISCO devnode (keccak suite): deploy --audit-anchor --write, the
    Anchorer over the store through the FISCO adapter, and `audit anchors --family fisco` on
    the honest export (match) and on the re-written, re-signed one (INVALID)."""
    folder = world["folder"] / "fisco"
    folder.mkdir()
    for name in ("audit.key", "audit.pub"):
        shutil.copy(world["folder"] / name, folder / name)
    with DevNodeThread(DevNodeOptions(port=0, block_interval_ms=20, seed="anchor-tests")) as node:
        sealers = ", ".join(f'{{ node_id = "{k.node_id}" }}' for k in node.sealer_keys)
        path = folder / "gateway.toml"
        path.write_text(
            f"""[chains.fisco-test]
family = "fisco-bcos-3"
endpoints = ["{node.url}"]
sealers = [{sealers}]
relayer_key = {{ env = "T_ANCHOR_RELAYER" }}
owner_key = {{ env = "T_ANCHOR_OWNER" }}

[audit]
key = "audit.key"
"""
        )
        env = world["env"] | {
            "T_ANCHOR_RELAYER": "0x" + "5a" * 32,
            "T_ANCHOR_OWNER": "0x" + "6b" * 32,
        }
        for extra in ((), ("--audit-anchor",)):
            done = _gateway(
                "deploy", "--config", str(path), "--chain", "fisco-test", *extra, "--write",
                env=env, cwd=folder,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
        config = load_config(path)
        contract = config.audit.anchor_contract
        assert contract is not None
        relayer = account_address(bytes.fromhex("5a" * 32), CryptoSuite.KECCAK256_SECP256K1)
        asyncio.run(_anchor_fisco(config, env, world["folder"], contract))
        fisco = world | {"folder": folder, "url": node.url, "contract": contract}
        fisco["relayer"] = relayer.lower()
        honest = _write(folder, "honest.jsonl", [json.loads(x) for x in world["lines"]])
        done = _anchors(fisco, honest, "--family", "fisco", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        assert [(a["seq"], a["status"]) for a in json.loads(done.stdout)["anchors"]] == [
            (20, "match")
        ]
        objs = [json.loads(x) for x in world["lines"]]
        next(o for o in objs if o["type"] == "audit-record" and o["seq"] == 5)["tx_hash"] = "0xcd"
        _resign(objs, world["key"])
        rewritten = _write(folder, "rewritten.jsonl", objs)
        done = _anchors(fisco, rewritten, "--family", "fisco")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "INVALID seq 20: history rewritten after it was anchored in tx" in done.stdout


async def _anchor_fisco(config: Any, env: dict[str, str], data_dir: Path, contract: str) -> None:
    adapter = FiscoAdapter(config.chains["fisco-test"].fisco_settings(env))
    store = SqliteStore(data_dir)
    await store.open()
    try:
        anchorer = Anchorer(store, adapter, contract=bytes.fromhex(contract[2:]))
        assert await anchorer.step() is not None
    finally:
        await store.close()
        await adapter.close()
