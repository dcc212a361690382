"""The attacker review of the audit trail (2026-12-03), verify side: one test per finding,
each the review's reproducer turned around (it failed before the fix). Exports come from
``build_export`` of ``test_audit.py`` (a real SQLite audit log whose bundles prove exactly its
records' facts); tampering edits the exported lines as an attacker would.

Findings: 1 (``--known-checkpoints``), 3 (a bundle bound to its record), 4 (deep lines), 7
(tail seq, repeated checkpoints), 8 (duplicate keys, header vs export-end, stray evidence
lines), 11 (trust roots and the signed export time printed)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import gateway
from relay.audit import (
    AuditKey,
    AuditRecord,
    Checkpoint,
    ExportFormatError,
    Problem,
    VerifyReport,
    canonical_json,
    load_known_checkpoints,
    record_from_json,
    sha256_hex,
    verify_export,
    write_export,
)
from relay.audit_check import MAX_LINE_CHARS, Claim, LineError, parse_line, unbound
from tests.unit.relay.test_audit import GATEWAY, build_export
from verifier.events import DecodedEvent
from verifier.hashing import CryptoSuite
from verifier.types import DecodedLog, Family, VerifiedEvidence


@pytest.fixture(name="export", scope="module")
def _export(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditKey, list[str]]:
    """21 records, checkpoints at 4, 8, 12, 16, 20; its key."""
    return build_export(tmp_path_factory.mktemp("review"))


def _objs(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(x) for x in lines]


def _dump(objs: list[dict[str, Any]]) -> list[str]:
    return [canonical_json(o).decode() for o in objs]


def _at(objs: list[dict[str, Any]], seq: int) -> int:
    return next(i for i, o in enumerate(objs) if o["type"] == "audit-record" and o["seq"] == seq)


def _rehash(o: dict[str, Any]) -> None:
    o["hash"] = sha256_hex(canonical_json({k: v for k, v in o.items() if k != "hash"}))


def _bad(report: VerifyReport, problem: Problem, seq: int | None) -> None:
    assert (report.problem, report.bad_seq) == (problem, seq), report.detail


def _verify(key: AuditKey, lines: list[str], known: list[Checkpoint] | None = None) -> VerifyReport:
    return verify_export(lines, key.public_key, known=known or [])


# -- finding 3: a bundle proves the record it is attached to ----------------------------------


def _relink(objs: list[dict[str, Any]], key: AuditKey) -> list[str]:
    """Re-hash every record and re-sign as the key's holder would (a gateway that records
    whatever it is given): only the binding of bundle to record is left to catch an edit."""
    records: list[AuditRecord] = []
    prev = "0" * 64
    for o in objs:
        if o["type"] == "audit-record":
            o["prev_hash"] = prev
            _rehash(o)
            prev = o["hash"]
            records.append(record_from_json(o))
    bundles = {o["digest"]: o["bundle"] for o in objs if o["type"] == "evidence"}
    trusts = {o["digest"]: o["trust"] for o in objs if o["type"] == "trust"}
    return list(
        write_export(
            records, [], key=key, gateway=GATEWAY, bundles=bundles.get, trusts=trusts.get, now=1e9
        )
    )


@pytest.mark.parametrize(
    ("seq", "field", "value", "why"),
    [
        (2, "message_id", "0x" + "ab" * 32, "MessageSent of 0x"),  # another message's bundle
        (4, "height", 41, "height 41, the bundle proves block 61"),
        (4, "tx_hash", "0x" + "de" * 32, "the record states transaction 0x" + "de" * 32),
        (4, "hop", "message_sent", "not the gateway's MessageSent"),
    ],
)
def test_a_bundle_proving_another_fact_than_its_record_is_named(
    export: tuple[AuditKey, list[str]], seq: int, field: str, value: Any, why: str
) -> None:
    """Finding 3: the record relies on a bundle that verifies but proves another message,
    block, transaction or hop; with the chain re-hashed and re-signed only the binding sees it."""
    key, lines = export
    objs = _objs(lines)
    objs[_at(objs, seq)][field] = value
    report = _verify(key, _relink(objs, key))
    _bad(report, Problem.EVIDENCE_UNBOUND, seq)
    assert why in report.detail


def test_a_bundle_of_another_event_or_emitter_is_named(export: tuple[AuditKey, list[str]]) -> None:
    """Finding 3: the delivered record (seq 4) pointed at message 1's MessageSent bundle, and a
    record whose trust summary names another gateway than the proven log's emitter."""
    key, lines = export
    objs = _objs(lines)
    sent = objs[_at(objs, 2)]
    swapped = copy.deepcopy(objs)
    result = swapped[_at(swapped, 4)]
    result["evidence_digest"], result["trust_digest"] = (
        sent["evidence_digest"],
        sent["trust_digest"],
    )
    report = _verify(key, _relink(swapped, key))
    _bad(report, Problem.EVIDENCE_UNBOUND, 4)
    assert "MessageSent" in report.detail
    renamed = copy.deepcopy(objs)
    renamed[_at(renamed, 2)]["trust"]["gateway"] = "0x" + "99" * 20
    report = _verify(key, _relink(renamed, key))
    _bad(report, Problem.EVIDENCE_UNBOUND, 2)
    assert "the proven log is from 0x" + "01" * 20 in report.detail


def _sealed(sent: tuple[bytes, ...], results: tuple[bytes, ...]) -> VerifiedEvidence:
    event = DecodedEvent(
        "Sealed(uint64,bytes32[],bytes32[])",
        (("sealNumber", 7), ("sentIds", sent), ("resultHashes", results)),
    )
    return VerifiedEvidence(
        family=Family.FISCO_BCOS_3,
        chain_id="fisco",
        crypto=CryptoSuite.KECCAK256_SECP256K1,
        block_number=42,
        block_hash=b"\x11" * 32,
        receipt_hash=b"\x22" * 32,
        log_index=0,
        log=DecodedLog(address=b"\x05" * 20, topics=(), data=b""),
        quorum=None,
        event=event,
    )


def test_a_fisco_seal_binds_the_ids_it_lists() -> None:
    """Finding 3 on FISCO: a MessageSent record needs its id among the seal's sent ids; a
    delivery result needs the seal to hold result hashes (their ids are inside the hashes)."""
    mid = b"\x33" * 32
    bundle = {"receipt": {"transactionHash": "0x" + "44" * 32}}
    claim = Claim("0x" + mid.hex(), "message_sent", 42, "0x" + "44" * 32, None)
    assert unbound(claim, bundle, _sealed((mid,), ())) is None
    assert "does not list message" in str(unbound(claim, bundle, _sealed((b"\x01" * 32,), ())))
    result = Claim("0x" + mid.hex(), "delivery_result", 42, None, None)
    assert unbound(result, bundle, _sealed((), (b"\x02" * 32,))) is None
    assert "no delivery result" in str(unbound(result, bundle, _sealed((mid,), ())))
    higher = Claim("0x" + mid.hex(), "message_sent", 43, None, {"gateway": "0x" + "05" * 20})
    assert "height 43" in str(unbound(higher, bundle, _sealed((mid,), ())))


# -- finding 4: a deep or huge line is refused before json.loads ------------------------------


def test_a_deeply_nested_line_is_refused_not_parsed(
    export: tuple[AuditKey, list[str]], tmp_path: Path
) -> None:
    """Finding 4: 200,000 nested brackets after the header: INVALID (exit 1, the gateway
    writes no such line) in a process whose recursion limit is raised as relay.app's
    dependencies raise it; as the header: not an export (exit 2). Never a crash."""
    key, lines = export
    deep = "[" * 200_000 + "]" * 200_000
    report = _verify(key, [lines[0], deep, *lines[1:]])
    _bad(report, Problem.FORMAT, None)
    assert "nested more than" in report.detail
    with pytest.raises(ExportFormatError, match="nested more than"):
        _verify(key, [deep, *lines[1:]])
    pub = tmp_path / "audit.pub"
    pub.write_text(key.public_hex)
    for name, content in (("body.jsonl", [lines[0], deep]), ("head.jsonl", [deep])):
        (tmp_path / name).write_text("".join(f"{x}\n" for x in content))
    script = (
        "import sys; sys.setrecursionlimit(100000); import gateway; "
        "sys.exit(gateway.main(sys.argv[1:]))"
    )
    for name, code in (("body.jsonl", 1), ("head.jsonl", 2)):
        done = subprocess.run(
            [sys.executable, "-c", script, "audit", "verify", name, "--key", "audit.pub"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == code, done.stdout + done.stderr


def test_a_line_longer_than_any_bundle_is_refused_before_parsing() -> None:
    """Finding 4: the line bound (one bundle's bound plus its wrapper) holds before parsing."""
    with pytest.raises(LineError, match="longer than"):
        parse_line('{"x":"' + "a" * MAX_LINE_CHARS + '"}')


# -- finding 7: the tail names the first uncovered seq; checkpoints unique and increasing ------


def test_a_tail_edit_names_the_first_record_after_the_last_checkpoint(
    export: tuple[AuditKey, list[str]],
) -> None:
    """Finding 7: seq 21 (after the checkpoint at 20) edited and re-hashed: named as seq 21,
    the first record no checkpoint covers, not as seq 22, which does not exist."""
    key, lines = export
    objs = _objs(lines)
    objs[_at(objs, 21)]["reason"] = "edited"
    _rehash(objs[_at(objs, 21)])
    _bad(_verify(key, _dump(objs)), Problem.TRUNCATED, 21)


def test_a_removed_checkpoint_hidden_by_a_repeated_one_is_named(
    export: tuple[AuditKey, list[str]],
) -> None:
    """Finding 7: the checkpoint at 8 removed and the one at 4 repeated to keep the count."""
    key, lines = export
    objs = _objs(lines)
    cps = [i for i, o in enumerate(objs) if o["type"] == "checkpoint"]
    first = objs[cps[0]]
    del objs[cps[1]]
    objs.insert(cps[0] + 1, dict(first))
    _bad(_verify(key, _dump(objs)), Problem.CHECKPOINT_ORDER, 4)


# -- finding 8: parsing quirks --------------------------------------------------------------


def test_a_repeated_key_is_refused(export: tuple[AuditKey, list[str]]) -> None:
    """Finding 8: a record line with a second, forged ``kind`` first: a reader taking the first
    value would show it, the last value verifies."""
    key, lines = export
    i = _at(_objs(lines), 2)
    forged = list(lines)
    forged[i] = lines[i].replace('{"check":null,', '{"kind":"evidence_rejected","check":null,', 1)
    assert forged[i] != lines[i]
    report = _verify(key, forged)
    _bad(report, Problem.FORMAT, None)
    assert "'kind' appears twice" in report.detail


def test_the_header_must_match_the_signed_export_end(
    export: tuple[AuditKey, list[str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Finding 8: an old export re-dated in its unsigned header, and an export without
    records renamed, are named; the signed export time is reported and printed."""
    key, lines = export
    objs = _objs(lines)
    objs[0]["exported_at"] = "2030-01-01T00:00:00.000000Z"
    report = _verify(key, _dump(objs))
    _bad(report, Problem.HEADER, None)
    assert "exported_at '2030-01-01T00:00:00.000000Z'" in report.detail
    empty = _objs(
        list(write_export([], [], key=key, gateway=GATEWAY, bundles={}.get, trusts={}.get, now=1e9))
    )
    assert _verify(key, _dump(empty)).ok
    empty[0]["gateway"] = "some-other-gateway"
    _bad(_verify(key, _dump(empty)), Problem.HEADER, None)
    report = _verify(key, lines)
    assert report.exported_at == _objs(lines)[-1]["time"]
    path, pub = tmp_path / "x.jsonl", tmp_path / "audit.pub"
    path.write_text("".join(f"{x}\n" for x in lines))
    pub.write_text(key.public_hex)
    assert gateway.main(["audit", "verify", str(path), "--key", str(pub)]) == 0
    assert f"exported (signed) at {report.exported_at}" in capsys.readouterr().out


def test_unreferenced_and_repeated_evidence_lines_are_refused(
    export: tuple[AuditKey, list[str]],
) -> None:
    """Finding 8: a fake evidence line for a real digest placed before the genuine one; and
    evidence/trust lines that no record references."""
    key, lines = export
    objs = _objs(lines)
    i, real = next((i, o) for i, o in enumerate(objs) if o["type"] == "evidence")
    shadowed = [*objs[:i], {**real, "bundle": {"forged": True}}, *objs[i:]]
    _bad(_verify(key, _dump(shadowed)), Problem.EVIDENCE_DUPLICATE, None)
    stray: list[dict[str, Any]] = [
        {"type": "evidence", "digest": "00" * 32, "bundle": {"note": "0x..99 delivered"}},
        {"type": "trust", "digest": "11" * 32, "trust": {"sealers": ["attacker"]}},
    ]
    for junk in stray:
        report = _verify(key, _dump([*objs[:i], junk, *objs[i:]]))
        _bad(report, Problem.EVIDENCE_UNREFERENCED, None)
        assert junk["digest"] in report.detail


# -- finding 1 (verify half): checkpoints the auditor already holds --------------------------


def _rewritten(key: AuditKey, lines: list[str], seq: int) -> list[str]:
    """The review's laundering: seq ``seq`` rewritten, the chain re-hashed after it, the
    checkpoints from it on dropped, and the result exported and signed by the gateway."""
    objs = _objs(lines)
    objs[_at(objs, seq)]["reason"] = "rewritten by the DBA"
    records: list[AuditRecord] = []
    prev = "0" * 64
    for o in objs:
        if o["type"] == "audit-record":
            o["prev_hash"] = prev
            _rehash(o)
            prev = o["hash"]
            records.append(record_from_json(o))
    kept = [
        Checkpoint(**{k: v for k, v in o.items() if k not in {"type", "v"}})
        for o in objs
        if o["type"] == "checkpoint" and o["seq"] < seq
    ]
    bundles = {o["digest"]: o["bundle"] for o in objs if o["type"] == "evidence"}
    trusts = {o["digest"]: o["trust"] for o in objs if o["type"] == "trust"}
    return list(
        write_export(
            records, kept, key=key, gateway=GATEWAY, bundles=bundles.get, trusts=trusts.get, now=2e9
        )
    )


def test_a_history_rewritten_since_a_held_checkpoint_is_named(
    export: tuple[AuditKey, list[str]], tmp_path: Path
) -> None:
    """Finding 1: the laundered export verifies on its own (the key signed it); against the
    earlier export the auditor kept, the first held checkpoint after the rewrite is named."""
    key, earlier = export
    forged = _rewritten(key, earlier, 3)
    assert _verify(key, forged).ok
    held = load_known_checkpoints(earlier, key.public_key)
    assert [cp.seq for cp in held] == [4, 8, 12, 16, 20, 21]  # the export-end's head too
    report = _verify(key, forged, held)
    _bad(report, Problem.HISTORY_REWRITTEN, 4)
    assert "history rewritten since the checkpoint at seq 4 you already hold" in report.detail
    same = _verify(key, earlier, held)
    assert same.ok
    assert (same.known_checked, same.known_beyond) == (6, 0)
    (tmp_path / "audit.pub").write_text(key.public_hex)
    (tmp_path / "earlier.jsonl").write_text("".join(f"{x}\n" for x in earlier))
    (tmp_path / "now.jsonl").write_text("".join(f"{x}\n" for x in forged))
    argv = ["audit", "verify", str(tmp_path / "now.jsonl"), "--key", str(tmp_path / "audit.pub")]
    assert gateway.main(argv) == 0
    assert gateway.main([*argv, "--known-checkpoints", str(tmp_path / "earlier.jsonl")]) == 1


def test_held_checkpoints_must_be_signed_by_the_key(export: tuple[AuditKey, list[str]]) -> None:
    """Finding 1: a held file whose checkpoint another key signed is unusable (exit 2)."""
    _, lines = export
    other = AuditKey.generate()
    with pytest.raises(ExportFormatError, match="not signed by --key"):
        load_known_checkpoints(lines, other.public_key)


# -- finding 11: the trust roots relied on are reported ---------------------------------------


def test_the_report_lists_the_trust_roots_and_block_hashes_relied_on(
    export: tuple[AuditKey, list[str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Finding 11: the VERIFIED line and --json name each distinct trust root (EVM: chain id,
    gateway, and every block hash relied on) so an auditor can compare them."""
    key, lines = export
    path, pub = tmp_path / "x.jsonl", tmp_path / "audit.pub"
    path.write_text("".join(f"{x}\n" for x in lines))
    pub.write_text(key.public_hex)
    assert gateway.main(["audit", "verify", str(path), "--key", str(pub), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    roots = data["trust_roots"]
    assert {r["gateway"] for r in roots} == {"0x" + "01" * 20, "0x" + "04" * 20}
    assert sorted(b["height"] for r in roots for b in r["blocks"]) == [41, 42, 43, 61, 62, 63]
    assert data["exported_at"] == _objs(lines)[-1]["time"]
    assert gateway.main(["audit", "verify", str(path), "--key", str(pub)]) == 0
    out = capsys.readouterr().out
    assert "trust roots: EVM chain id 31337 gateway 0x" + "01" * 20 + ": 3 block hash(es)" in out
