"""The audit trail: hash chain, checkpoints, export round trip, and every tampering case
named by ``verify_export``. Exports are built on a real SQLite file with evidence bundles that
prove exactly the records' facts (synthetic EVM blocks with real receipt tries and proofs: the
gateway's ``MessageSent`` and ``MessageDelivered`` of each message, at the recorded height and
transaction); tampering edits the exported lines as an attacker would."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode

from adapters.evm.proofs import build_block_receipts
from relay.audit import (
    GENESIS_HASH,
    AuditKey,
    AuditKeyError,
    AuditKind,
    AuditLog,
    CheckpointPolicy,
    ExportFormatError,
    Problem,
    Reliance,
    VerifyReport,
    canonical_json,
    kind_of,
    parse_public_key,
    record_from_json,
    sha256_hex,
    verify_export,
)
from relay.audit import (
    evidence_digest as audit_digest,
)
from relay.sqlite_store import SqliteStore
from relay.store import HistoryEntry, Hop, RejectedAttempt, Role, State, Transition
from relay.verify import evidence_digest
from verifier.evm.header import compute_block_hash
from verifier.evm.receipt import encode_receipt, receipt_key
from verifier.hashing import keccak256
from verifier.merkle.mpt import compute_mpt_root
from verifier.messages import (
    MESSAGE_DELIVERED_EVENT,
    MESSAGE_SENT_EVENT,
    DeliveryResult,
    DeliveryStatus,
    Message,
    message_id,
    result_hash,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"
GATEWAY = "gw-a"
STEPS_PER_MESSAGE = 6


def _bundles() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]


SRC_GATEWAY = b"\x01" * 20
DST_GATEWAY = b"\x04" * 20


def _msg(n: int) -> Message:
    return Message(
        src_chain="chain-a",
        src_gateway=SRC_GATEWAY,
        dst_chain="chain-b",
        nonce=n,
        sender=b"\x02" * 20,
        receiver=b"\x03" * 20,
        payload=b"p%d" % n,
        timeout=10_000,
    )


def _evm_bundle(
    log: dict[str, Any], *, number: int, tx: str, event: dict[str, Any]
) -> dict[str, Any]:
    """A one-receipt London block at ``number`` whose receipt (transaction ``tx``) holds
    ``log``; the bundle proves that log, its trust as ``relay.verify`` records an EVM one."""
    receipt: dict[str, Any] = {
        "type": "0x2",
        "status": "0x1",
        "cumulativeGasUsed": "0x5208",
        "logsBloom": "0x" + "00" * 256,
        "logs": [log],
        "transactionIndex": "0x0",
        "transactionHash": tx,
    }
    header: dict[str, Any] = {
        "parentHash": "0x" + "01" * 32,
        "sha3Uncles": "0x" + "02" * 32,
        "miner": "0x" + "03" * 20,
        "stateRoot": "0x" + "04" * 32,
        "transactionsRoot": "0x" + "05" * 32,
        "receiptsRoot": "0x" + compute_mpt_root({receipt_key(0): encode_receipt(receipt)}).hex(),
        "logsBloom": "0x" + "00" * 256,
        "difficulty": "0x0",
        "number": hex(number),
        "gasLimit": "0x1c9c380",
        "gasUsed": "0x5208",
        "timestamp": "0x65000000",
        "extraData": "0x",
        "mixHash": "0x" + "06" * 32,
        "nonce": "0x0000000000000000",
        "baseFeePerGas": "0x7",
        "transactions": [tx],
    }
    header["hash"] = "0x" + compute_block_hash(header).hex()
    receipt["blockHash"] = header["hash"]
    receipt["blockNumber"] = header["number"]
    block = build_block_receipts(header, [receipt], chain="chain-a", endpoint="rpc-1")
    return block.bundle(0, 0, chain="chain-a", event=event)


def _log(address: bytes, topics: list[bytes], data: bytes) -> dict[str, Any]:
    return {
        "address": "0x" + address.hex(),
        "topics": ["0x" + t.hex() for t in topics],
        "data": "0x" + data.hex(),
    }


def sent_bundle(m: Message, *, number: int, tx: str) -> dict[str, Any]:
    """The bundle of ``m``'s ``MessageSent`` log (``SRC_GATEWAY``) at block ``number``."""
    data = encode(
        ["string", "string", "uint64", "address", "address", "bytes", "uint64"],
        [m.src_chain, m.dst_chain, m.nonce, m.sender, m.receiver, m.payload, m.timeout],
    )
    topic = keccak256(b"MessageSent(bytes32,string,string,uint64,address,address,bytes,uint64)")
    log = _log(SRC_GATEWAY, [topic, message_id(m, keccak256)], data)
    return _evm_bundle(log, number=number, tx=tx, event=MESSAGE_SENT_EVENT)


def delivered_bundle(m: Message, *, number: int, tx: str) -> dict[str, Any]:
    """The bundle of the ``MessageDelivered`` log of ``m`` (``DST_GATEWAY``, success)."""
    r = DeliveryResult(
        message_id(m, keccak256), m.dst_chain, DST_GATEWAY, DeliveryStatus.SUCCESS, b"ok"
    )
    data = encode(["string", "uint8", "bytes"], [m.src_chain, int(r.status), r.result])
    topic = keccak256(b"MessageDelivered(bytes32,bytes32,string,uint8,bytes)")
    log = _log(DST_GATEWAY, [topic, r.id, result_hash(r, keccak256)], data)
    return _evm_bundle(log, number=number, tx=tx, event=MESSAGE_DELIVERED_EVENT)


def _summary(gateway: bytes) -> dict[str, Any]:
    """A trust summary shaped like ``relay.trust``'s EVM one."""
    return {"family": "evm", "chain_id": 31337, "gateway": "0x" + gateway.hex(), "quorum": 1}


class _Writer:
    """Appends records as the store's hook would: each in its own transaction."""

    def __init__(self, conn: sqlite3.Connection, log: AuditLog) -> None:
        self.conn, self.log, self.at = conn, log, 1_700_000_000.0

    def step(
        self,
        id: bytes,
        role: Role,
        to: State,
        expect: frozenset[State] | None,
        *,
        relied: Reliance | None = None,
        **kw: Any,
    ) -> None:
        self.at += 1.5
        t = Transition(id=id, role=role, to=to, expect=expect, at=self.at, **kw)
        entry = HistoryEntry(
            seq=0,
            id=id,
            role=role,
            state=to,
            at=self.at,
            kind="state",
            height=t.height,
            tx_hash=t.tx_hash,
            error=t.error,
            src_chain="chain-a",
            dst_chain="chain-b",
        )
        bundle = t.evidence[1] if t.evidence is not None else None
        self.conn.execute("BEGIN IMMEDIATE")
        self.log.append_transition(self.conn, t, entry, relied=relied, bundle=bundle)
        self.conn.execute("COMMIT")


def _relied(
    bundle: dict[str, Any], trust: dict[str, Any] | None = None, *, gateway: bytes = SRC_GATEWAY
) -> Reliance:
    return Reliance(
        evidence_digest(bundle),
        trust=trust if trust is not None else bundle["trust"],
        summary=_summary(gateway),
    )


def build_export(
    tmp_path: Path, *, every: int = 4, trust_override: dict[str, Any] | None = None
) -> tuple[AuditKey, list[str]]:
    """Three messages through the source's whole life (each relying on the bundles of its
    ``MessageSent`` at height 40 + n and of its ``MessageDelivered`` at 60 + n), one rejected
    message and one rejected peer attempt; a checkpoint every ``every`` records."""
    key = AuditKey.generate()
    log = AuditLog(GATEWAY, key, CheckpointPolicy(every_records=every, every_seconds=10_000))
    conn = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    w = _Writer(conn, log)
    src = Role.SOURCE
    for n in (1, 2, 3):
        m = _msg(n)
        i = message_id(m, keccak256)
        sent_tx, result_tx = "0x" + f"{n:02x}" * 32, "0x" + f"{n + 16:02x}" * 32
        sent = sent_bundle(m, number=40 + n, tx=sent_tx)
        result = delivered_bundle(m, number=60 + n, tx=result_tx)
        w.step(
            i,
            src,
            State.OBSERVED,
            None,
            message=m,
            evidence=(Hop.MESSAGE_SENT, sent, "rpc-1"),
            height=40 + n,
            tx_hash=sent_tx,
        )
        w.step(
            i,
            src,
            State.VERIFIED,
            frozenset({State.OBSERVED}),
            relied=_relied(sent, trust_override),
        )
        w.step(i, src, State.FORWARDED, frozenset({State.VERIFIED}))
        w.step(
            i,
            src,
            State.RESULT_VERIFIED,
            frozenset({State.VERIFIED, State.FORWARDED}),
            evidence=(Hop.DELIVERY_RESULT, result, "gw-b:rpc-2"),
            relied=_relied(result, trust_override, gateway=DST_GATEWAY),
            height=60 + n,
            tx_hash=result_tx,
        )
        w.step(i, src, State.ACK_SUBMITTED, frozenset({State.RESULT_VERIFIED}), tx_hash="0xab")
        w.step(i, src, State.ACKNOWLEDGED, frozenset({State.ACK_SUBMITTED}), height=90)
    bad = sent_bundle(_msg(1), number=41, tx="0x" + "01" * 32)
    bad["receipt"]["status"] = "0x0"
    j = (99).to_bytes(32, "big")
    w.step(
        j, src, State.OBSERVED, None, message=_msg(99), evidence=(Hop.MESSAGE_SENT, bad, "rpc-1")
    )
    w.step(
        j,
        src,
        State.REJECTED,
        frozenset({State.OBSERVED}),
        error="[receipt_status] the receipt failed (status 0)",
    )
    conn.execute("BEGIN IMMEDIATE")
    log.append_rejected(
        conn,
        RejectedAttempt(j, Role.DESTINATION, Hop.MESSAGE_SENT, "header_trust", "no", "gw-b", w.at),
        src_chain="chain-a",
        dst_chain="chain-b",
        state=State.VERIFIED,
        bundle=bad,
    )
    conn.execute("COMMIT")
    lines = list(log.export_lines(conn, now=w.at + 10))
    conn.close()
    return key, lines


@pytest.fixture(name="export", scope="module")
def _export(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditKey, list[str]]:
    """A good export (21 records, checkpoints at 4, 8, 12, 16, 20) and its key."""
    return build_export(tmp_path_factory.mktemp("audit"))


def _objs(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(x) for x in lines]


def _dump(objs: list[dict[str, Any]]) -> list[str]:
    return [canonical_json(o).decode() for o in objs]


def _record_index(objs: list[dict[str, Any]], seq: int) -> int:
    return next(i for i, o in enumerate(objs) if o["type"] == "audit-record" and o["seq"] == seq)


def _rehash(obj: dict[str, Any]) -> None:
    obj["hash"] = sha256_hex(canonical_json({k: v for k, v in obj.items() if k != "hash"}))


def _verify(key: AuditKey, lines: list[str]) -> VerifyReport:
    return verify_export(lines, key.public_key)


def _bad(report: VerifyReport, problem: Problem, seq: int | None) -> None:
    assert (report.problem, report.bad_seq) == (problem, seq), report.detail


# -- the chain and the round trip ------------------------------------------------------------


def test_a_good_export_verifies_with_every_bundle_reverified(
    export: tuple[AuditKey, list[str]],
) -> None:
    """Round trip: 21 records, 5 checkpoints, the 6 bundles (3 sent, 3 delivered) re-verified
    under the recorded trust, the rejected bundle digest-checked, 1 record after the last
    checkpoint; the one EVM trust root and its 6 block hashes listed."""
    key, lines = export
    report = _verify(key, lines)
    assert report.ok, report.detail
    assert (report.records, report.checkpoints, report.first_seq, report.last_seq) == (21, 5, 1, 21)
    assert (report.bundles_verified, report.bundles_digest_only) == (6, 1)
    assert [(r["family"], r["chain_id"], len(r["blocks"])) for r in report.trust_roots] == [
        ("evm", 31337, 3),
        ("evm", 31337, 3),
    ]
    assert report.exported_at == json.loads(lines[-1])["time"]
    assert (report.last_checkpoint_seq, report.unsigned_tail) == (20, 1)
    assert report.kinds["acknowledged"] == 3
    assert report.kinds["attempt_rejected"] == 1
    assert report.first_time is not None
    assert report.first_time.endswith("Z")


def test_records_chain_from_genesis_and_hash_their_canonical_body(
    export: tuple[AuditKey, list[str]],
) -> None:
    """seq 1 links to 32 zero bytes; each hash is sha256 of the canonical body without it."""
    _, lines = export
    records = [record_from_json(o) for o in _objs(lines) if o["type"] == "audit-record"]
    assert records[0].prev_hash == GENESIS_HASH
    for prev, r in itertools.pairwise(records):
        assert r.prev_hash == prev.hash
        assert r.seq == prev.seq + 1
    for r in records:
        assert r.hash == sha256_hex(canonical_json(r.body()))
    first = records[0]
    assert (first.kind, first.message_id, first.height, first.endpoint) == (
        AuditKind.FACT_OBSERVED,
        "0x" + message_id(_msg(1), keccak256).hex(),
        41,
        "rpc-1",
    )
    rejected = next(r for r in records if r.kind is AuditKind.EVIDENCE_REJECTED)
    assert (rejected.check, rejected.reason) == ("receipt_status", "the receipt failed (status 0)")
    result = next(r for r in records if r.kind is AuditKind.RESULT_VERIFIED)
    assert (result.peer, result.hop, result.trust) == (
        "gw-b",
        "delivery_result",
        _summary(DST_GATEWAY),
    )


def test_the_export_is_versioned_and_ends_with_a_signed_head(
    export: tuple[AuditKey, list[str]],
) -> None:
    """Header first (format, gateway, public key), export-end last, bundles before use."""
    key, lines = export
    objs = _objs(lines)
    assert objs[0]["format"] == "interop-audit-export/1"
    assert objs[0]["public_key"] == key.public_hex
    assert objs[-1]["type"] == "export-end"
    assert (objs[-1]["seq"], objs[-1]["records"]) == (21, 21)
    first_use = _record_index(objs, 1)
    assert objs[first_use - 1]["type"] == "evidence"


# -- tampering --------------------------------------------------------------------------------


def _mutate(name: str, value: Any) -> Any:
    """A plausible edit of the same type (a null becomes what the field holds elsewhere)."""
    if value is None:
        return 7 if name == "height" else "x"
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "0"
    if isinstance(value, dict):
        return {**value, "x": 1}
    raise AssertionError(value)


RECORD_FIELDS = sorted(
    {
        "type",
        "v",
        "seq",
        "time",
        "gateway",
        "kind",
        "message_id",
        "role",
        "src_chain",
        "dst_chain",
        "state",
        "height",
        "tx_hash",
        "hop",
        "endpoint",
        "peer",
        "evidence_digest",
        "trust_digest",
        "trust",
        "check",
        "reason",
        "prev_hash",
        "hash",
    }
)


@pytest.mark.parametrize("name", RECORD_FIELDS)
def test_editing_any_field_of_a_record_is_named(
    export: tuple[AuditKey, list[str]], name: str
) -> None:
    """Every field, edited in record 10 (which has evidence and trust), names seq 10."""
    key, lines = export
    objs = _objs(lines)
    rec = objs[_record_index(objs, 10)]
    assert rec["kind"] == "result_verified"
    rec[name] = _mutate(name, rec[name])
    report = _verify(key, _dump(objs))
    expected = {"seq": Problem.SEQ, "type": Problem.FORMAT, "v": Problem.FORMAT}
    expected |= {"kind": Problem.FORMAT}  # "result_verified0" is no kind at all
    _bad(report, expected.get(name, Problem.HASH), 10)


def test_a_record_edited_and_rehashed_is_named_by_the_next_link(
    export: tuple[AuditKey, list[str]],
) -> None:
    """Rewriting seq 6's reason and its hash breaks seq 7's link: seq 6 is named."""
    key, lines = export
    objs = _objs(lines)
    rec = objs[_record_index(objs, 6)]
    rec["height"] = 1
    _rehash(rec)
    _bad(_verify(key, _dump(objs)), Problem.PREV_HASH, 6)


def test_a_deleted_record_is_named(export: tuple[AuditKey, list[str]]) -> None:
    """Record 7 removed: seq 8 arrives where 7 was due."""
    key, lines = export
    objs = _objs(lines)
    del objs[_record_index(objs, 7)]
    report = _verify(key, _dump(objs))
    _bad(report, Problem.SEQ, 7)
    assert "missing" in report.detail


def test_reordered_records_are_named(export: tuple[AuditKey, list[str]]) -> None:
    """Records 5 and 6 swapped: seq 6 arrives where 5 was due."""
    key, lines = export
    objs = _objs(lines)
    a, b = _record_index(objs, 5), _record_index(objs, 6)
    objs[a], objs[b] = objs[b], objs[a]
    _bad(_verify(key, _dump(objs)), Problem.SEQ, 5)


def test_an_inserted_duplicate_is_named(export: tuple[AuditKey, list[str]]) -> None:
    """A copy of record 9 inserted after it: seq 9 again where 10 was due."""
    key, lines = export
    objs = _objs(lines)
    i = _record_index(objs, 9)
    objs.insert(i + 1, copy.deepcopy(objs[i]))
    report = _verify(key, _dump(objs))
    _bad(report, Problem.SEQ, 10)
    assert "reordered or inserted" in report.detail


def test_an_insertion_with_the_chain_rewritten_fails_the_next_checkpoint(
    export: tuple[AuditKey, list[str]],
) -> None:
    """A forged record inserted after seq 9 and every later record renumbered and re-linked
    (hashes recomputed): the signed checkpoint at 12 no longer matches; seq 9..12 are the
    span named from its first seq (after the checkpoint at 8)."""
    key, lines = export
    objs = _objs(lines)
    i = _record_index(objs, 9)
    forged = copy.deepcopy(objs[i])
    forged["kind"] = "forwarded"
    objs.insert(i + 1, forged)
    prev_hash = objs[i]["prev_hash"]
    seq = 9
    for o in objs[i:]:
        if o["type"] == "audit-record":
            o["seq"], o["prev_hash"] = seq, prev_hash
            _rehash(o)
            prev_hash, seq = o["hash"], seq + 1
    report = _verify(key, _dump(objs))
    _bad(report, Problem.CHECKPOINT_HEAD, 9)
    assert "checkpoint states seq 12" in report.detail


def test_truncating_the_tail_after_a_checkpoint_is_named(
    export: tuple[AuditKey, list[str]],
) -> None:
    """Cutting seq 21 (after the checkpoint at 20) and the export-end line: named as cut;
    keeping the export-end line: its signed head (21) names the missing tail."""
    key, lines = export
    objs = _objs(lines)
    i = _record_index(objs, 21)
    cut = objs[:i]
    report = _verify(key, _dump(cut))
    _bad(report, Problem.TRUNCATED, 21)
    report = _verify(key, _dump([*cut, objs[-1]]))
    _bad(report, Problem.TRUNCATED, 21)
    assert "exported at head seq 21" in report.detail


def test_a_forged_checkpoint_signature_is_named(export: tuple[AuditKey, list[str]]) -> None:
    """A checkpoint's signature flipped, or made by another key, or for another head."""
    key, lines = export
    other = AuditKey.generate()
    objs = _objs(lines)
    i = next(i for i, o in enumerate(objs) if o["type"] == "checkpoint" and o["seq"] == 8)
    flipped = copy.deepcopy(objs)
    sig = flipped[i]["signature"]
    flipped[i]["signature"] = ("1" if sig[0] == "0" else "0") + sig[1:]
    _bad(_verify(key, _dump(flipped)), Problem.CHECKPOINT_SIGNATURE, 8)
    forged = copy.deepcopy(objs)
    body = {k: v for k, v in forged[i].items() if k != "signature"}
    forged[i]["signature"] = other.sign(
        b"interop-audit-checkpoint/1\n" + canonical_json(body)
    ).hex()
    _bad(_verify(key, _dump(forged)), Problem.CHECKPOINT_SIGNATURE, 8)
    moved = copy.deepcopy(objs)
    moved[i]["head_hash"] = "11" * 32
    _bad(_verify(key, _dump(moved)), Problem.CHECKPOINT_SIGNATURE, 8)


def test_a_removed_checkpoint_line_is_named(export: tuple[AuditKey, list[str]]) -> None:
    """Dropping the checkpoint at 8 leaves the records intact but the export-end's signed
    count of checkpoints no longer matches."""
    key, lines = export
    objs = [o for o in _objs(lines) if not (o["type"] == "checkpoint" and o["seq"] == 8)]
    report = _verify(key, _dump(objs))
    _bad(report, Problem.CHECKPOINT_MISSING, None)
    assert "states 5 checkpoints, the file has 4" in report.detail


def test_a_forged_export_end_or_another_key_is_named(export: tuple[AuditKey, list[str]]) -> None:
    """The export-end signed by another key; an export checked with the wrong key."""
    key, lines = export
    other = AuditKey.generate()
    objs = _objs(lines)
    body = {k: v for k, v in objs[-1].items() if k != "signature"}
    objs[-1]["signature"] = other.sign(b"interop-audit-export-end/1\n" + canonical_json(body)).hex()
    _bad(_verify(key, _dump(objs)), Problem.EXPORT_END_SIGNATURE, 21)
    report = verify_export(lines, other.public_key)
    _bad(report, Problem.KEY, None)


def test_an_edited_or_swapped_bundle_is_named(export: tuple[AuditKey, list[str]]) -> None:
    """The first example's bundle edited in place, or replaced by another example's bundle
    under its digest: named at the first record that relies on it (seq 1)."""
    key, lines = export
    objs = _objs(lines)
    evidence = [i for i, o in enumerate(objs) if o["type"] == "evidence"]
    edited = copy.deepcopy(objs)
    edited[evidence[0]]["bundle"]["receipt"]["gasUsed"] = "0x1"
    report = _verify(key, _dump(edited))
    _bad(report, Problem.EVIDENCE_DIGEST, 1)
    swapped = copy.deepcopy(objs)
    swapped[evidence[0]]["bundle"] = swapped[evidence[1]]["bundle"]
    _bad(_verify(key, _dump(swapped)), Problem.EVIDENCE_DIGEST, 1)
    missing = [o for i, o in enumerate(objs) if i != evidence[0]]
    _bad(_verify(key, _dump(missing)), Problem.EVIDENCE_MISSING, 1)


def test_an_edited_trust_is_named(export: tuple[AuditKey, list[str]]) -> None:
    """The recorded trust object changed (say, a sealer set widened): named at seq 2, the
    first record verified under it."""
    key, lines = export
    objs = _objs(lines)
    i = next(i for i, o in enumerate(objs) if o["type"] == "trust")
    objs[i]["trust"]["block_hash"] = "0x" + "22" * 32
    _bad(_verify(key, _dump(objs)), Problem.TRUST_DIGEST, 2)


def test_a_bundle_that_does_not_verify_under_its_recorded_trust_is_named(
    tmp_path: Path,
) -> None:
    """A gateway that recorded a trust under which its bundle fails: the re-verification with
    ``verifier/`` names the record and the failed check."""
    trust = {"block_hash": "0x" + "33" * 32}
    key, lines = build_export(tmp_path, trust_override=trust)
    report = _verify(key, lines)
    _bad(report, Problem.EVIDENCE_INVALID, 2)
    assert "header_trust" in report.detail or "sealers" in report.detail


def test_an_export_from_a_later_seq_verifies_and_still_names_tampering(tmp_path: Path) -> None:
    """``from_seq`` 10: records 10..21 and the checkpoints after them; the first link is
    taken as given, everything after it is checked; a deleted record 10 is named."""
    key, _ = build_export(tmp_path)
    conn = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    lines = list(AuditLog(GATEWAY, key).export_lines(conn, now=1_800_000_000.0, from_seq=10))
    conn.close()
    report = _verify(key, lines)
    assert report.ok, report.detail
    assert (report.first_seq, report.last_seq, report.records, report.checkpoints) == (
        10,
        21,
        12,
        3,
    )
    objs = _objs(lines)
    del objs[_record_index(objs, 10)]
    _bad(_verify(key, _dump(objs)), Problem.SEQ, 10)


@pytest.mark.parametrize(
    "text",
    [
        [],
        ["not json"],
        ['{"type":"header","format":"interop-audit-export/2","gateway":"g"}'],
        ['{"format":"interop-evidence/1"}'],
    ],
)
def test_a_file_that_is_not_an_export_is_refused(text: list[str]) -> None:
    """Empty, not JSON, another version, an evidence bundle: not an export at all."""
    with pytest.raises(ExportFormatError):
        verify_export(text, AuditKey.generate().public_key)


# -- the store's transaction, the policy, keys -----------------------------------------------


async def test_records_commit_and_roll_back_with_the_store_s_state(tmp_path: Path) -> None:
    """Wired as the SQLite store's hook: a change writes its record in the same transaction,
    a stale change writes none, a failing hook rolls the state back, and a store reopened
    with a new log continues the chain without a gap."""
    key = AuditKey.generate()
    log = AuditLog(GATEWAY, key, CheckpointPolicy(every_records=2, every_seconds=10_000))
    fail = {"on": False}

    def hook(conn: Any, t: Transition, entry: HistoryEntry) -> None:
        log.hook(conn, t, entry)
        if fail["on"]:
            raise RuntimeError("disk full")

    store = SqliteStore(tmp_path, audit=hook)
    await store.open()
    i = (1).to_bytes(32, "big")
    bundle = _bundles()[0]
    observe = Transition(
        i,
        Role.SOURCE,
        State.OBSERVED,
        None,
        10.0,
        message=_msg(1),
        evidence=(Hop.MESSAGE_SENT, bundle, "rpc-1"),
        height=5,
    )
    verify = Transition(i, Role.SOURCE, State.VERIFIED, frozenset({State.OBSERVED}), 11.0)
    assert await store.transition(observe)
    assert not await store.transition(observe)  # a duplicate: no change, no record
    fail["on"] = True
    with pytest.raises(RuntimeError):
        await store.transition(verify)
    fail["on"] = False
    rec = await store.get(i, Role.SOURCE)
    assert rec is not None
    assert rec.state is State.OBSERVED
    await store.close()

    log2 = AuditLog(GATEWAY, key, CheckpointPolicy(every_records=2, every_seconds=10_000))
    store = SqliteStore(tmp_path, audit=log2.hook)
    await store.open()
    assert await store.transition(verify)
    await store.close()
    conn = sqlite3.connect(store.path)
    lines = list(log2.export_lines(conn, now=20.0))
    conn.close()
    report = _verify(key, lines)
    assert report.ok, report.detail
    assert (report.records, report.checkpoints, report.kinds) == (
        2,
        1,
        {"fact_observed": 1, "evidence_verified": 1},
    )


def test_the_audit_tables_refuse_updates_and_deletes(tmp_path: Path) -> None:
    """Append-only also against other SQL: triggers abort UPDATE and DELETE."""
    conn = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    AuditLog.ensure_schema(conn)
    conn.execute("INSERT INTO audit_records (seq, hash, record) VALUES (1, 'h', '{}')")
    for sql in ("UPDATE audit_records SET hash='x'", "DELETE FROM audit_records"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)


@pytest.mark.parametrize(
    ("head", "last", "last_at", "now", "due"),
    [
        (0, 0, None, 100.0, False),  # nothing recorded
        (999, 0, 0.0, 1.0, False),
        (1000, 0, 0.0, 1.0, True),  # every N records
        (1001, 1000, 0.0, 59.0, False),
        (1001, 1000, 0.0, 60.0, True),  # or T seconds with new records
        (1000, 1000, 0.0, 600.0, False),  # the head did not move: nothing to sign
    ],
)
def test_checkpoint_policy(
    head: int, last: int, last_at: float | None, now: float, due: bool
) -> None:
    """Defaults 1000 records / 60 s; an unchanged head is never re-signed."""
    assert CheckpointPolicy().due(head_seq=head, last_seq=last, last_at=last_at, now=now) is due


def test_a_time_checkpoint_is_made_by_the_timer_call(tmp_path: Path) -> None:
    """``checkpoint_if_due`` signs the head once T seconds passed since the first record."""
    key = AuditKey.generate()
    log = AuditLog(GATEWAY, key, CheckpointPolicy(every_records=100, every_seconds=30))
    conn = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    w = _Writer(conn, log)
    w.step(b"\x01" * 32, Role.SOURCE, State.OBSERVED, None, message=_msg(1))
    assert log.checkpoint_if_due(conn, w.at + 10) is None
    cp = log.checkpoint_if_due(conn, w.at + 31)
    assert cp is not None
    assert cp.seq == 1
    assert cp.verify(key.public_key)
    assert log.checkpoint_if_due(conn, w.at + 100) is None


def test_the_key_is_saved_0600_and_its_public_part_parses_in_every_form(tmp_path: Path) -> None:
    """PEM private key 0600, PEM public key; hex, base64 and PEM all name the same key."""
    key = AuditKey.generate()
    key.save(tmp_path / "audit.key", tmp_path / "audit.pub")
    assert stat.S_IMODE((tmp_path / "audit.key").stat().st_mode) == 0o600
    loaded = AuditKey.load(tmp_path / "audit.key")
    assert loaded.public_hex == key.public_hex
    raw = bytes.fromhex(key.public_hex)
    for text in (
        key.public_hex,
        "0x" + key.public_hex,
        base64.b64encode(raw).decode(),
        (tmp_path / "audit.pub").read_text(),
    ):
        assert parse_public_key(text).public_bytes_raw() == raw
    for bad in ("00", "zz" * 32, base64.b64encode(b"\0" * 31).decode()):
        with pytest.raises(AuditKeyError):
            parse_public_key(bad)
    (tmp_path / "bad.key").write_text("nope")
    with pytest.raises(AuditKeyError):
        AuditKey.load(tmp_path / "bad.key")


_S, _D = Role.SOURCE, Role.DESTINATION
KINDS: list[tuple[Role, State, frozenset[State] | None, AuditKind]] = [
    (_S, State.OBSERVED, None, AuditKind.FACT_OBSERVED),
    (_S, State.VERIFIED, frozenset({State.OBSERVED}), AuditKind.EVIDENCE_VERIFIED),
    (_S, State.REJECTED, frozenset({State.OBSERVED}), AuditKind.EVIDENCE_REJECTED),
    (_S, State.FORWARDED, frozenset({State.VERIFIED}), AuditKind.FORWARDED),
    (
        _S,
        State.RESULT_VERIFIED,
        frozenset({State.VERIFIED, State.FORWARDED}),
        AuditKind.RESULT_VERIFIED,
    ),
    (_S, State.ACK_SUBMITTED, frozenset({State.RESULT_VERIFIED}), AuditKind.ACK_SUBMITTED),
    (_S, State.RESULT_VERIFIED, frozenset({State.ACK_SUBMITTED}), AuditKind.ACK_REQUEUED),
    (_S, State.ACKNOWLEDGED, frozenset({State.FORWARDED}), AuditKind.ACKNOWLEDGED),
    (_D, State.VERIFIED, None, AuditKind.ACCEPTED_FROM_PEER),
    (_D, State.DELIVERY_SUBMITTED, frozenset({State.VERIFIED}), AuditKind.DELIVERY_SUBMITTED),
    (_D, State.VERIFIED, frozenset({State.DELIVERY_SUBMITTED}), AuditKind.DELIVERY_REQUEUED),
    (_D, State.DELIVERED, frozenset({State.DELIVERY_SUBMITTED}), AuditKind.DELIVERED),
    (_D, State.EXPIRED, frozenset({State.VERIFIED}), AuditKind.EXPIRED),
    (_D, State.RESULT_FORWARDED, frozenset({State.DELIVERED}), AuditKind.RESULT_FORWARDED),
]


@pytest.mark.parametrize(("role", "to", "expect", "kind"), KINDS)
def test_every_pipeline_transition_has_its_kind(
    role: Role, to: State, expect: frozenset[State] | None, kind: AuditKind
) -> None:
    """The pipeline's transitions (relay/pipeline.py) each map to one documented kind."""
    assert kind_of(Transition(b"\0" * 32, role, to, expect, 0.0)) is kind


def test_a_transition_the_pipeline_never_makes_has_no_kind() -> None:
    """A destination row never becomes ``rejected``: no silent catch-all kind."""
    with pytest.raises(ValueError, match="no audit kind"):
        kind_of(Transition(b"\0" * 32, Role.DESTINATION, State.REJECTED, None, 0.0))


def test_the_audit_digest_is_the_relay_s_evidence_digest() -> None:
    """relay.audit keeps its own copy (no network imports offline): both give one digest."""
    for bundle in _bundles():
        assert audit_digest(bundle) == evidence_digest(bundle)
        assert audit_digest(bundle["trust"]) == evidence_digest(bundle["trust"])
    odd = {"reason": "caf\u00e9 \u2026", "n": [1, None]}
    assert audit_digest(odd) == evidence_digest(odd)


def test_documented_kinds_cover_the_enum() -> None:
    """docs/audit.md explains every kind."""
    text = (EXAMPLES.parent / "audit.md").read_text()
    for kind in AuditKind:
        assert f"`{kind}`" in text, kind
