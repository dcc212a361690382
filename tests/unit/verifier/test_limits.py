"""Every resource bound of verifier/limits.py, probed with the worst case at its value and one past.

At the bound, a valid bundle of that shape (built with the project's own trie, Merkle and
signing code) goes through the whole ``gateway verify`` path, bytes -> load_json ->
verify_bundle, and is accepted; one past the bound it is rejected with check ``limit`` naming
the field, before the expensive step. These tests assert outcomes, never timings: the figures
are in ``bench/adversarial_verifier.py``.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest

from tests.fuzz.bundles import (
    dumps,
    evm_bundle,
    evm_log,
    fisco_bundle,
    fisco_log,
    pad_to,
    sealer_secrets,
)
from verifier import limits
from verifier.encoding import load_json
from verifier.errors import MalformedEvidence, MalformedProof, VerificationError
from verifier.evidence import verify_bundle
from verifier.hashing import CryptoSuite
from verifier.signatures.quorum import verify_signature_list
from verifier.types import VerifiedEvidence

KECCAK = CryptoSuite.KECCAK256_SECP256K1
SM = CryptoSuite.SM3_SM2


def verify_bytes(raw: bytes) -> VerifiedEvidence:
    """What ``gateway verify`` does with the bytes it read."""
    return verify_bundle(load_json(raw, what="bundle"))


def rejected(raw: bytes | dict[str, Any], *, field: str, check: str = "limit") -> MalformedEvidence:
    """Assert the bundle (bytes or a document) fails ``check`` on ``field``; return the error."""
    with pytest.raises(MalformedEvidence) as info:
        verify_bytes(raw) if isinstance(raw, bytes) else verify_bundle(raw)
    assert info.value.check == check, info.value
    assert info.value.field == field, info.value
    return info.value


@pytest.fixture(scope="module", name="evm_at_log_bound")
def _evm_at_log_bound() -> dict[str, Any]:
    """A valid EVM bundle whose receipt holds MAX_LOGS_PER_RECEIPT logs, 4 topics each, every
    RPC field present: the largest receipt in logs that the verifier accepts."""
    logs = [evm_log(i) for i in range(limits.MAX_LOGS_PER_RECEIPT)]
    return evm_bundle(logs, log_index=limits.MAX_LOGS_PER_RECEIPT - 1)


@pytest.fixture(scope="module", name="fisco_at_log_bound")
def _fisco_at_log_bound() -> dict[str, Any]:
    """A valid FISCO bundle whose receipt holds MAX_LOGS_PER_RECEIPT logs of 4 topics."""
    return fisco_bundle(KECCAK, [fisco_log(i) for i in range(limits.MAX_LOGS_PER_RECEIPT)])


# ------------------------------------------------------------------------------ the JSON text


def test_bundle_bytes_at_the_bound_verify_and_one_more_is_refused_unread() -> None:
    """A valid bundle padded to exactly MAX_BUNDLE_BYTES verifies; one byte more is refused
    before it is decoded."""
    small = evm_bundle([evm_log(0)])
    raw = pad_to(small, limits.MAX_BUNDLE_BYTES)
    assert verify_bytes(raw).block_number == 0x1A2B
    error = rejected(raw + b" ", field="bundle")
    assert f"more than the limit of {limits.MAX_BUNDLE_BYTES}" in str(error)


def test_decoded_text_at_the_bound_verifies_and_one_character_more_is_refused() -> None:
    """A valid bundle whose decoded text takes exactly MAX_DECODED_TEXT_BYTES (one emoji makes
    it 4 bytes a character) verifies; one character more is refused before it is parsed."""
    bundle = evm_bundle([evm_log(0)], log_index=0)
    bundle["chain_id"] = "limits-evm \U0001f600"
    size = sys.getsizeof(dumps(dict(bundle, padding="")).decode())
    pad = (limits.MAX_DECODED_TEXT_BYTES - size) // 4
    raw = dumps(dict(bundle, padding="x" * pad))
    assert sys.getsizeof(raw.decode()) <= limits.MAX_DECODED_TEXT_BYTES
    assert verify_bytes(raw).chain_id == "limits-evm \U0001f600"
    error = rejected(dumps(dict(bundle, padding="x" * (pad + 1))), field="bundle")
    assert "bytes decoded" in str(error)


def test_json_values_at_the_bound_verify_and_one_more_is_refused_before_parsing() -> None:
    """A valid bundle carrying an ignored list that brings it to exactly MAX_JSON_VALUES
    verifies; one value more is refused by the count, before json.loads builds anything."""
    bundle = fisco_bundle(KECCAK, [fisco_log(0)])
    base = dumps(dict(bundle, padding=[]))
    text = base.decode()
    counted = text.count(",") + text.count(":") + text.count("[") + text.count("{") + 1
    room = limits.MAX_JSON_VALUES - counted  # each further element adds one comma
    raw = dumps(dict(bundle, padding=[0] * (room + 1)))
    assert verify_bytes(raw).receipt_hash
    error = rejected(dumps(dict(bundle, padding=[0] * (room + 2))), field="bundle")
    assert "JSON values" in str(error)


def test_json_strings_at_the_bound_parse_and_one_more_is_refused() -> None:
    """Strings are counted as pairs of quotes: MAX_JSON_VALUES of them pass the count, one
    more does not (escaped quotes count too: a safe over-count for chain data)."""
    at_bound = b'"' + b'\\"' * (2 * limits.MAX_JSON_VALUES - 2) + b'"'
    assert load_json(at_bound) == '"' * (2 * limits.MAX_JSON_VALUES - 2)
    with pytest.raises(MalformedEvidence, match="pairs of quotes") as info:
        load_json(b'"' + b'\\"' * (2 * limits.MAX_JSON_VALUES) + b'"')
    assert info.value.check == limits.LIMIT_CHECK


def test_json_depth_at_the_bound_parses_and_one_more_is_refused() -> None:
    """MAX_JSON_DEPTH levels parse; one more is a typed error, even with a huge recursion
    limit in force (no segfault on the C stack)."""
    depth = limits.MAX_JSON_DEPTH
    assert load_json(b"[" * depth + b"]" * depth) is not None
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        for raw in (b"[" * (depth + 1) + b"]" * (depth + 1), b'{"a":' * 300_000 + b"1"):
            with pytest.raises(MalformedEvidence) as info:
                load_json(raw)
            assert info.value.check == limits.LIMIT_CHECK
    finally:
        sys.setrecursionlimit(old)


def test_unbalanced_brackets_are_refused_before_the_depth_is_measured() -> None:
    """Millions of closing brackets are 'not JSON', without a list of millions of brackets."""
    with pytest.raises(MalformedEvidence, match="unbalanced"):
        load_json(b"]" * 5_000_000)


def test_integer_digits_at_the_bound_parse_and_one_more_is_refused() -> None:
    """An 80-digit integer parses; 81 digits are refused whatever the interpreter's limit."""
    digits = limits.MAX_JSON_INT_DIGITS
    assert load_json(b"[-" + b"9" * digits + b"]") == [-int("9" * digits)]
    with pytest.raises(MalformedEvidence, match="not acceptable JSON"):
        load_json(b"[" + b"9" * (digits + 1) + b"]")


# ---------------------------------------------------------------------------------- receipts


def test_evm_receipt_at_the_log_bound_verifies(evm_at_log_bound: dict[str, Any]) -> None:
    """MAX_LOGS_PER_RECEIPT logs with 4 topics and every RPC field fit in a bundle and verify."""
    raw = dumps(evm_at_log_bound)
    assert len(raw) <= limits.MAX_BUNDLE_BYTES
    result = verify_bytes(raw)
    assert result.log is not None
    assert len(result.log.topics) == limits.MAX_TOPICS_PER_LOG


def test_evm_receipt_one_log_over_is_refused_before_the_proof(
    evm_at_log_bound: dict[str, Any],
) -> None:
    """One log more is refused on the count, before the proof is walked or a log decoded
    (the proof still matches the original receipt, so any later check would say otherwise)."""
    bundle = copy.deepcopy(evm_at_log_bound)
    bundle["receipt"]["logs"].append(evm_log(0))
    rejected(dumps(bundle), field="receipt.logs")


def test_fisco_receipt_at_the_log_bound_verifies(fisco_at_log_bound: dict[str, Any]) -> None:
    """MAX_LOGS_PER_RECEIPT FISCO log entries of 4 topics verify."""
    assert verify_bytes(dumps(fisco_at_log_bound)).receipt_hash


def test_fisco_receipt_one_log_over_is_refused_before_hashing(
    fisco_at_log_bound: dict[str, Any],
) -> None:
    """One log entry more is refused on the count, not as a receipt hash mismatch."""
    bundle = copy.deepcopy(fisco_at_log_bound)
    bundle["receipt"]["logEntries"].append(fisco_log(0))
    rejected(dumps(bundle), field="receipt.logEntries")


def test_a_fifth_topic_is_refused_for_both_families() -> None:
    """LOG0..LOG4: four topics verify (above), a fifth is refused before it is decoded, on EVM
    and on FISCO (same EVM)."""
    evm = evm_bundle([evm_log(0), evm_log(1)])
    evm["receipt"]["logs"][1]["topics"].append(evm["receipt"]["logs"][1]["topics"][0])
    rejected(evm, field="receipt.logs[1].topics")
    fisco = fisco_bundle(KECCAK, [fisco_log(0), fisco_log(1)])
    fisco["receipt"]["logEntries"][1]["topics"].append(evm["receipt"]["logs"][1]["topics"][0])
    rejected(fisco, field="receipt.logEntries[1].topics")


@pytest.mark.parametrize("family", ["evm", "fisco"])
def test_log_data_at_the_bound_verifies_and_one_byte_more_is_refused(family: str) -> None:
    """A log of exactly MAX_LOG_DATA_BYTES of data verifies; one byte more is refused on the
    hex text's length, before it is decoded."""
    size = limits.MAX_LOG_DATA_BYTES
    if family == "evm":
        bundle = evm_bundle([evm_log(0, data=size)], log_index=0)
        field, key = "receipt.logs[0].data", "logs"
    else:
        bundle = fisco_bundle(KECCAK, [fisco_log(0, data=size)])
        field, key = "receipt.logEntries[0].data", "logEntries"
    assert verify_bytes(dumps(bundle)).receipt_hash
    bundle["receipt"][key][0]["data"] += "00"
    rejected(bundle, field=field)


# ----------------------------------------------------------------------------- FISCO headers


@pytest.fixture(scope="module", name="sm_at_sealer_bound")
def _sm_at_sealer_bound() -> dict[str, Any]:
    """MAX_SEALERS SM2 sealers, every one signing: the most signature work a header can ask."""
    return fisco_bundle(SM, sealers=limits.MAX_SEALERS)


def test_signatures_and_sealers_at_the_bound_verify(sm_at_sealer_bound: dict[str, Any]) -> None:
    """MAX_SEALERS sealers and MAX_SIGNATURES_PER_HEADER SM2 signatures verify."""
    result = verify_bytes(dumps(sm_at_sealer_bound))
    assert result.quorum is not None
    assert result.quorum.have == limits.MAX_SIGNATURES_PER_HEADER == limits.MAX_SEALERS


def test_one_signature_over_is_refused_before_any_is_verified(
    sm_at_sealer_bound: dict[str, Any],
) -> None:
    """A signature list one longer (not hashed, so the header hash holds) is refused on its
    length, not as a duplicate signer after hundreds of SM2 verifications."""
    bundle = copy.deepcopy(sm_at_sealer_bound)
    signatures = bundle["block"]["signatureList"]
    signatures.append(signatures[0])
    rejected(bundle, field="block.signatureList")


@pytest.mark.parametrize("key", ["sealerList", "consensusWeights"])
def test_one_sealer_over_in_the_header_is_refused_before_hashing(
    sm_at_sealer_bound: dict[str, Any], key: str
) -> None:
    """A header listing one sealer (or weight) more is refused on the count, not as a header
    hash mismatch."""
    bundle = copy.deepcopy(sm_at_sealer_bound)
    bundle["block"][key].append(bundle["block"][key][0])
    rejected(bundle, field=f"block.{key}")


def test_trusted_sealers_over_the_bound_are_refused() -> None:
    """A trusted set of MAX_SEALERS + 1 is refused on the envelope's count."""
    bundle = fisco_bundle(KECCAK)
    extra = [
        {"node_id": f"{i:0128x}", "weight": 1}
        for i in range(1, limits.MAX_SEALERS + 2 - len(bundle["trust"]["sealers"]))
    ]
    bundle["trust"]["sealers"] += extra
    assert len(bundle["trust"]["sealers"]) == limits.MAX_SEALERS + 1
    with pytest.raises(MalformedEvidence, match="more than") as info:
        verify_bundle(bundle)
    assert info.value.field == "trust.sealers"


def test_parent_info_at_the_bound_verifies_and_one_more_is_refused() -> None:
    """MAX_PARENT_INFO parents verify (the hash covers them); one more is refused unhashed."""
    secrets = sealer_secrets(4)
    bundle = fisco_bundle(KECCAK, secrets=secrets, parents=limits.MAX_PARENT_INFO)
    assert verify_bundle(bundle).block_number == 42
    bundle["block"]["parentInfo"].append(bundle["block"]["parentInfo"][0])
    rejected(bundle, field="block.parentInfo")


# ------------------------------------------------------------------------------------ proofs


def test_proof_items_over_the_envelope_bound_are_refused() -> None:
    """MAX_PROOF_ITEMS proof items reach the family's walker; one more is refused unread."""
    bundle = fisco_bundle(KECCAK)
    bundle["proof"] = ["00" * 32] * limits.MAX_PROOF_ITEMS
    with pytest.raises(MalformedProof, match="at most"):  # the 3.x walker's own bound
        verify_bundle(bundle)
    bundle["proof"].append("00" * 32)
    with pytest.raises(MalformedEvidence, match="more than") as info:
        verify_bundle(bundle)
    assert info.value.field == "proof"


def test_mpt_proof_nodes_at_the_bound_are_walked_and_one_more_is_refused() -> None:
    """MAX_MPT_PROOF_NODES nodes are walked (and fail on the first hash); one more is refused
    before any node is hashed."""
    bundle = evm_bundle([evm_log(0)])
    node = "0x" + "c0" * 532
    bundle["proof"] = [node] * limits.MAX_MPT_PROOF_NODES
    with pytest.raises(VerificationError, match="node hash differs") as info:
        verify_bundle(bundle)
    assert info.value.check == "receipt_proof"
    bundle["proof"].append(node)
    with pytest.raises(MalformedProof, match=f"more than {limits.MAX_MPT_PROOF_NODES}"):
        verify_bundle(bundle)


def test_a_bad_proof_is_refused_before_the_receipt_is_re_encoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The EVM proof is walked first: a proof that does not hold costs no re-encoding."""
    from verifier.evm import receipt as evm_receipt  # noqa: PLC0415 - the module patched

    bundle = evm_bundle([evm_log(i) for i in range(50)])
    bundle["proof"][0] = bundle["proof"][0][:-2] + (
        "00" if bundle["proof"][0][-2:] != "00" else "01"
    )

    def must_not_run(_: object) -> bytes:
        raise AssertionError("the receipt was re-encoded before the proof was checked")

    monkeypatch.setattr(evm_receipt, "encode_receipt", must_not_run)
    with pytest.raises(VerificationError) as info:
        verify_bundle(bundle)
    assert info.value.check == "receipt_proof"


def test_a_late_difference_in_a_large_receipt_is_located_exactly() -> None:
    """A receipt that differs from the proven value only in its last data byte (1 MiB of
    data) is refused as receipt_proof naming that byte, found without a per-byte loop."""
    bundle = evm_bundle([evm_log(0, data=limits.MAX_LOG_DATA_BYTES)])
    data = bundle["receipt"]["logs"][0]["data"]
    bundle["receipt"]["logs"][0]["data"] = data[:-2] + "ff"
    with pytest.raises(VerificationError, match=r"first difference at byte \d+") as info:
        verify_bundle(bundle)
    assert info.value.check == "receipt_proof"
    proven_length = int(str(info.value).split("lengths ")[1].split(" ")[0])
    assert f"first difference at byte {proven_length - 1};" in str(info.value)


@pytest.mark.parametrize(
    ("signatures", "sealers", "trusted", "field", "what"),
    [
        (limits.MAX_SIGNATURES_PER_HEADER + 1, 1, 1, "signatureList", "257 signatures"),
        (0, limits.MAX_SEALERS + 1, 1, "sealerList", "257 sealers"),
        (0, 1, limits.MAX_SEALERS + 1, "trusted", "257 trusted sealers"),
    ],
)
def test_quorum_bounds_its_own_inputs(
    signatures: int, sealers: int, trusted: int, field: str, what: str
) -> None:
    """Callers that pass typed fields (not through header.py) are bounded too, before any
    signature is verified, naming the list that is too long."""
    key = b"\x01" * 64
    with pytest.raises(MalformedEvidence, match="more than the limit") as info:
        verify_signature_list(
            b"\x00" * 32,
            [key] * sealers,
            [(0, b"\x00" * 65)] * signatures,
            {i.to_bytes(64, "big"): 1 for i in range(1, trusted + 1)},
            CryptoSuite.KECCAK256_SECP256K1,
        )
    assert (info.value.check, info.value.field) == ("limit", field)
    assert f"{field}: {what}, more than the limit of 256" in str(info.value)
