"""relay.anchor: which checkpoints get anchored, retries, the auditor's comparison, and the
``[audit] anchor_*`` configuration (fakes for the chain; real signed checkpoints)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import cast

import pytest
from structlog.testing import capture_logs

from adapters.base import ChainAdapter, ChainUnavailable, Submission
from relay.anchor import (
    Anchor,
    Anchorer,
    anchorer,
    check_anchors,
    checkpoint_digest,
    export_heads,
)
from relay.audit import AuditKey, Checkpoint, canonical_json, sign_checkpoint
from relay.config import ConfigError, load_config, parse_config, write_audit_anchor

ANCHOR = bytes.fromhex("aa" * 20)


class Checkpoints:
    """The store's ``audit_checkpoint`` over a list of signed checkpoints."""

    def __init__(self, key: AuditKey) -> None:
        self.key = key
        self.items: list[Checkpoint] = []

    def add(self, *seqs: int) -> None:
        for seq in seqs:
            head = hashlib.sha256(str(seq).encode()).hexdigest()
            self.items.append(
                sign_checkpoint(self.key, gateway="gw", seq=seq, head_hash=head, at=1000.0 + seq)
            )

    async def audit_checkpoint(self, seq: int = 0) -> Checkpoint | None:
        if seq <= 0:
            return self.items[-1] if self.items else None
        return next((c for c in self.items if c.seq >= seq), None)


class Chain:
    """An adapter's ``anchor``; fails while ``failures`` > 0."""

    chain = "fake-chain"

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.sent: list[tuple[bytes, int, bytes, bytes]] = []

    async def anchor(
        self, contract: bytes, seq: int, head_hash: bytes, checkpoint_digest: bytes
    ) -> Submission:
        if self.failures > 0:
            self.failures -= 1
            raise ChainUnavailable("connection refused", chain=self.chain, endpoint="e")
        self.sent.append((contract, seq, head_hash, checkpoint_digest))
        return Submission(f"0x{seq:064x}", seq, "e")


def _anchorer(store: Checkpoints, chain: Chain, every: int) -> Anchorer:
    return Anchorer(
        store,
        cast(ChainAdapter, chain),
        contract=ANCHOR,
        every=every,
        poll_seconds=0.01,
        backoff_first=0.01,
        backoff_max=0.02,
    )


def test_the_digest_is_sha256_of_the_checkpoint_line() -> None:
    """What an auditor recomputes with ``jq -cSaj . | sha256sum`` from the export's line."""
    cp = sign_checkpoint(AuditKey.generate(), gateway="gw", seq=4, head_hash="ab" * 32, at=1.0)
    line = json.dumps(cp.to_json(), indent=2)  # any formatting of the line
    expected = hashlib.sha256(canonical_json(json.loads(line))).digest()
    assert checkpoint_digest(cp) == expected
    assert export_heads([line.replace("\n", "")])[1] == {4: expected.hex()}


async def test_every_nth_new_checkpoint_is_anchored_the_newest_when_several() -> None:
    store, chain = Checkpoints(AuditKey.generate()), Chain()
    a = _anchorer(store, chain, every=2)
    assert await a.step() is None  # no checkpoint yet
    store.add(4)
    assert (await a.step()) is not None  # after a start: the newest at once
    store.add(8)
    assert await a.step() is None  # 1 of 2
    store.add(12)
    assert await a.step() is not None
    store.add(16, 20)
    assert await a.step() is not None  # two new: the newest one
    assert await a.step() is None  # nothing new
    assert [s[1] for s in chain.sent] == [4, 12, 20]
    last = store.items[-1]
    assert chain.sent[-1] == (
        ANCHOR,
        20,
        bytes.fromhex(last.head_hash),
        checkpoint_digest(last),
    )


async def test_failures_are_logged_and_retried_without_raising() -> None:
    store, chain = Checkpoints(AuditKey.generate()), Chain(failures=2)
    store.add(4)
    a = _anchorer(store, chain, every=1)
    with capture_logs() as logs:
        task = asyncio.create_task(a.run())
        async with asyncio.timeout(5):
            while not chain.sent:
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    failed = [e for e in logs if e["event"] == "audit_anchor_failed"]
    assert len(failed) == 2
    assert "connection refused" in failed[0]["reason"]
    done = [e for e in logs if e["event"] == "audit_anchored"]
    assert [(e["seq"], e["chain"]) for e in done] == [(4, "fake-chain")]
    assert done[0]["tx_hash"] == f"0x{4:064x}"


def _a(seq: int, head: str, digest: str = "00" * 32) -> Anchor:
    return Anchor(seq, head, digest, "0x" + "11" * 20, 100 + seq, f"0xtx{seq}")


def test_check_anchors_names_each_outcome() -> None:
    records = {s: f"{s:064x}" for s in range(3, 11)}
    checkpoints = {8: "dd" * 32}
    results = check_anchors(
        [
            _a(2, "whatever"),
            _a(4, f"{4:064x}"),
            _a(5, "ee" * 32),
            _a(8, f"{8:064x}", "dd" * 32),
            _a(8, f"{8:064x}", "cc" * 32),
            _a(12, "ff" * 32),
        ],
        records,
        checkpoints,
    )
    assert [r.status for r in results] == [
        "before_export",
        "match",
        "rewritten",
        "match",
        "checkpoint_differs",
        "truncated",
    ]
    assert [r.ok for r in results] == [True, True, False, True, False, False]
    assert "0xtx5" in results[2].detail
    assert "ends at seq 10" in results[5].detail


EVM = """
[chains.evm-a]
family = "evm"
endpoints = ["http://127.0.0.1:8545"]
chain_id = 31337
confirmations = 1
relayer_key = { env = "RELAYER" }
"""
FISCO = f"""
[chains.fisco-a]
family = "fisco-bcos-3"
endpoints = ["http://127.0.0.1:20200"]
sealers = [{{ node_id = "{"ab" * 64}" }}]
relayer_key = {{ env = "RELAYER" }}
"""
REMOTE = """
[chains.evm-r]
family = "evm"
served = false
endpoints = ["http://127.0.0.1:8546"]
chain_id = 31338
confirmations = 1
gateway = "0x1212121212121212121212121212121212121212"
"""


def _audit(tmp_path: Path, lines: str) -> str:
    AuditKey.generate().save(tmp_path / "audit.key", tmp_path / "audit.pub")
    return f'[audit]\nkey = "audit.key"\n{lines}'


def _problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, tmp_path / "gateway.toml")
    return [str(p) for p in info.value.problems]


def test_anchor_settings_load_and_default_to_every_checkpoint(tmp_path: Path) -> None:
    address = "0x" + "ab" * 20
    text = EVM + _audit(tmp_path, f'anchor_chain = "evm-a"\nanchor_contract = "{address}"\n')
    audit = parse_config(text, tmp_path / "gateway.toml").audit
    assert (audit.anchor_chain, audit.anchor_contract, audit.anchor_every) == (
        "evm-a",
        address,
        1,
    )


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ('anchor_chain = "evm-a"\n', "audit.anchor_contract: missing"),
        ('anchor_contract = "0x' + "ab" * 20 + '"\n', "audit.anchor_chain: missing"),
        ('anchor_chain = "evm-a"\nanchor_contract = "0x12"\n', "must be an address"),
        ('anchor_chain = "nope"\nanchor_contract = "0x' + "ab" * 20 + '"\n', "no such chain"),
        ('anchor_chain = "evm-r"\nanchor_contract = "0x' + "ab" * 20 + '"\n', "not served here"),
        (
            'anchor_chain = "evm-a"\nanchor_contract = "0x' + "ab" * 20 + '"\nanchor_every = 0\n',
            "audit.anchor_every",
        ),
    ],
)
def test_anchor_settings_are_validated(tmp_path: Path, lines: str, expected: str) -> None:
    problems = _problems(EVM + FISCO + REMOTE + _audit(tmp_path, lines), tmp_path)
    assert any(expected in p for p in problems), problems


def test_write_audit_anchor_sets_both_keys_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    original = "# mine\n" + EVM + _audit(tmp_path, "checkpoint_every = 5  # kept\n")
    path.write_text(original)
    write_audit_anchor(path, "evm-a", "0x" + "cd" * 20)
    write_audit_anchor(path, "evm-a", "0x" + "ef" * 20)  # replaced, not added again
    text = path.read_text()
    assert text.count("anchor_contract") == 1
    assert "checkpoint_every = 5  # kept" in text
    audit = load_config(path).audit
    assert (audit.anchor_chain, audit.anchor_contract) == ("evm-a", "0x" + "ef" * 20)


def test_a_served_fisco_chain_can_anchor(tmp_path: Path) -> None:
    address = "0x" + "ab" * 20
    text = FISCO + _audit(tmp_path, f'anchor_chain = "fisco-a"\nanchor_contract = "{address}"\n')
    assert parse_config(text, tmp_path / "gateway.toml").audit.anchor_chain == "fisco-a"


def test_the_gateway_builds_its_anchorer_from_the_configuration(tmp_path: Path) -> None:
    """relay/app.py's ``anchorer``: none without anchor_chain; else the chain's adapter (which
    sends from its relayer account), the contract and anchor_every."""
    address = "0x" + "ab" * 20
    store, chain = Checkpoints(AuditKey.generate()), Chain()
    adapters = {"evm-a": cast(ChainAdapter, chain)}
    plain = parse_config(EVM + _audit(tmp_path, ""), tmp_path / "gateway.toml")
    assert anchorer(plain, store, adapters) is None
    text = EVM + _audit(
        tmp_path, f'anchor_chain = "evm-a"\nanchor_contract = "{address}"\nanchor_every = 3\n'
    )
    built = anchorer(parse_config(text, tmp_path / "gateway.toml"), store, adapters)
    assert built is not None
    assert built.adapter is adapters["evm-a"]
    assert (built.contract, built.every) == (bytes.fromhex("ab" * 20), 3)
