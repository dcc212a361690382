"""Evidence bundles built from real chain data verify; every kind of bad bundle is rejected."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import VectorLoader
from verifier.errors import (
    DuplicateSigner,
    HeaderNotTrusted,
    InvalidSignature,
    MalformedEvidence,
    ProofMismatch,
    QuorumNotReached,
    VerificationError,
)
from verifier.evidence import BundleFormatError, parse_bundle, verify_bundle
from verifier.types import Family


def _evm_bundle(shared_vector: VectorLoader, proof_pos: int = 0) -> dict[str, Any]:
    v = shared_vector("evm/mainnet_19432673_cancun_small_block.json")
    entry = v["receipt_proofs"][proof_pos]
    index = int(entry["transactionIndex"], 16)
    receipt = next(r for r in v["receipts"] if int(r["transactionIndex"], 16) == index)
    return copy.deepcopy(
        {
            "format": "interop-evidence/1",
            "family": "evm",
            "chain_id": "ethereum-mainnet",
            "crypto": "keccak256-secp256k1",
            "block": v["header"],
            "receipt": receipt,
            "proof": entry["proof"],
            "log_index": 0,
            "trust": {"block_hash": v["header"]["hash"]},
        }
    )


def _fisco_bundle(shared_vector: VectorLoader) -> dict[str, Any]:
    v = shared_vector("fisco/wecross_bcos3_vectors.json")
    block = v["block"]
    return copy.deepcopy(
        {
            "format": "interop-evidence/1",
            "family": "fisco-bcos-3",
            "chain_id": "wecross-bcos3",
            "crypto": "keccak256-secp256k1",
            "block": block,
            "receipt": v["receipt"],
            "proof": v["receipt"]["txReceiptProof"],
            "trust": {"sealers": [{"node_id": pk, "weight": 1} for pk in block["sealerList"]]},
        }
    )


def _sm_bundle(shared_vector: VectorLoader) -> dict[str, Any]:
    v = shared_vector("fisco/fisco_doc_examples.json")["sm_chain"]
    block = v["block2_header"]
    return copy.deepcopy(
        {
            "format": "interop-evidence/1",
            "family": "fisco-bcos-3",
            "chain_id": "doc-sm-chain",
            "crypto": "sm3-sm2",
            "block": block,
            "receipt": v["deploy_receipt_block2"],
            "proof": v["deploy_receipt_block2"]["txReceiptProof"],
            "trust": {"sealers": [{"node_id": pk[2:], "weight": 1} for pk in block["sealerList"]]},
        }
    )


@pytest.mark.vectors
def test_real_mainnet_receipt_bundle_verifies(shared_vector: VectorLoader) -> None:
    """A bundle made of a real Cancun block, receipt and proof verifies and decodes its log."""
    bundle = _evm_bundle(shared_vector)
    result = verify_bundle(bundle)
    assert result.family is Family.EVM
    assert result.block_number == 19432673
    assert "0x" + result.block_hash.hex() == bundle["block"]["hash"]
    assert result.log is not None
    first_log = bundle["receipt"]["logs"][0]
    assert "0x" + result.log.address.hex() == first_log["address"]
    assert ["0x" + t.hex() for t in result.log.topics] == first_log["topics"]


@pytest.mark.vectors
def test_real_fisco_bundle_reaches_quorum(shared_vector: VectorLoader) -> None:
    """WeCross block 60 with its 10-level receipt proof verifies with 4/4 signatures."""
    result = verify_bundle(_fisco_bundle(shared_vector))
    assert result.block_number == 60
    assert result.quorum is not None
    assert (result.quorum.have, result.quorum.need, result.quorum.total) == (4, 3, 4)


@pytest.mark.vectors
def test_real_sm_chain_bundle_verifies(shared_vector: VectorLoader) -> None:
    """The official SM3 + SM2 chain's block 2 with 3 SM2 signatures and its deploy receipt."""
    result = verify_bundle(_sm_bundle(shared_vector))
    assert result.block_number == 2
    assert result.quorum is not None
    assert (result.quorum.have, result.quorum.need) == (3, 3)


@pytest.mark.vectors
def test_evm_untrusted_block_hash_is_rejected(shared_vector: VectorLoader) -> None:
    """A valid proof under a header the receiver does not trust is rejected."""
    bundle = _evm_bundle(shared_vector)
    bundle["trust"]["block_hash"] = "0x" + "11" * 32
    with pytest.raises(HeaderNotTrusted) as info:
        verify_bundle(bundle)
    assert info.value.check == "header_trust"


@pytest.mark.vectors
def test_evm_receipt_from_another_position_is_rejected(shared_vector: VectorLoader) -> None:
    """The proof of one receipt does not prove a different receipt of the same block."""
    bundle = _evm_bundle(shared_vector)
    other = _evm_bundle(shared_vector, proof_pos=1)
    bundle["proof"] = other["proof"]
    with pytest.raises(VerificationError):
        verify_bundle(bundle)


@pytest.mark.vectors
def test_evm_receipt_claiming_another_block_is_rejected(shared_vector: VectorLoader) -> None:
    """A receipt whose blockHash names another block is rejected even if the proof holds."""
    bundle = _evm_bundle(shared_vector)
    bundle["receipt"]["blockHash"] = "0x" + "22" * 32
    with pytest.raises(ProofMismatch) as info:
        verify_bundle(bundle)
    assert info.value.check == "receipt_block"


@pytest.mark.vectors
def test_fisco_valid_signer_outside_the_trust_root_is_skipped(shared_vector: VectorLoader) -> None:
    """A valid signature from a listed sealer the receiver does not trust is skipped, not fatal:
    the remaining trusted signers decide the quorum (a sealer added since the trust was set)."""
    bundle = _fisco_bundle(shared_vector)
    removed = bytes.fromhex(bundle["trust"]["sealers"].pop(0)["node_id"].removeprefix("0x"))
    sealer_list = [bytes.fromhex(k.removeprefix("0x")) for k in bundle["block"]["sealerList"]]
    signed = [e["sealerIndex"] for e in bundle["block"]["signatureList"]]
    result = verify_bundle(bundle)
    assert result.quorum is not None
    assert result.quorum.skipped == tuple(i for i in signed if sealer_list[i] == removed)
    assert result.quorum.total == len(bundle["trust"]["sealers"])
    assert result.quorum.have == len(signed) - len(result.quorum.skipped)


@pytest.mark.vectors
def test_fisco_invalid_signature_outside_the_trust_root_fails(shared_vector: VectorLoader) -> None:
    """Skipping applies to valid signatures only: a bad one from an untrusted sealer fails."""
    bundle = _fisco_bundle(shared_vector)
    removed = bundle["trust"]["sealers"].pop(0)["node_id"]
    sealer_list = [k.removeprefix("0x") for k in bundle["block"]["sealerList"]]
    for entry in bundle["block"]["signatureList"]:
        if sealer_list[entry["sealerIndex"]] == removed.removeprefix("0x"):
            sig = bytearray.fromhex(entry["signature"].removeprefix("0x"))
            sig[5] ^= 1
            entry["signature"] = "0x" + sig.hex()
            break
    else:
        pytest.skip("the removed sealer did not sign this block")
    with pytest.raises(InvalidSignature):
        verify_bundle(bundle)


@pytest.mark.vectors
def test_fisco_trusted_shortfall_names_have_and_need(shared_vector: VectorLoader) -> None:
    """Trusting only one of the signers: the shortfall says how much trusted weight signed."""
    bundle = _fisco_bundle(shared_vector)
    sealer_list = [k.removeprefix("0x") for k in bundle["block"]["sealerList"]]
    first_signer = sealer_list[bundle["block"]["signatureList"][0]["sealerIndex"]]
    bundle["trust"]["sealers"] = [
        s for s in bundle["trust"]["sealers"] if s["node_id"].removeprefix("0x") == first_signer
    ] + [{"node_id": "ab" * 64, "weight": 3}]
    with pytest.raises(QuorumNotReached, match="have 1, need 3") as info:
        verify_bundle(bundle)
    assert (info.value.have, info.value.need, info.value.total) == (1, 3, 4)


@pytest.mark.vectors
def test_fisco_signatures_one_short_of_quorum(shared_vector: VectorLoader) -> None:
    """Two of four signatures (weight 2 < 3) do not reach the PBFT quorum."""
    bundle = _fisco_bundle(shared_vector)
    bundle["block"]["signatureList"] = bundle["block"]["signatureList"][:2]
    with pytest.raises(QuorumNotReached) as info:
        verify_bundle(bundle)
    assert (info.value.have, info.value.need) == (2, 3)


@pytest.mark.vectors
def test_fisco_duplicated_signer_is_rejected(shared_vector: VectorLoader) -> None:
    """The same sealer's signature twice is rejected, not counted twice."""
    bundle = _fisco_bundle(shared_vector)
    sigs = bundle["block"]["signatureList"]
    bundle["block"]["signatureList"] = [sigs[0], sigs[1], sigs[1]]
    with pytest.raises(DuplicateSigner):
        verify_bundle(bundle)


@pytest.mark.vectors
def test_fisco_tampered_receipt_is_rejected(shared_vector: VectorLoader) -> None:
    """Changing a committed receipt field breaks the receipt hash or the proof."""
    bundle = _fisco_bundle(shared_vector)
    bundle["receipt"]["status"] = 1
    with pytest.raises(ProofMismatch):
        verify_bundle(bundle)


@pytest.mark.vectors
def test_fisco_log_index_out_of_range(shared_vector: VectorLoader) -> None:
    """A log_index beyond the receipt's logs is a malformed bundle, not a crash."""
    bundle = _sm_bundle(shared_vector)
    bundle["log_index"] = 0
    with pytest.raises(MalformedEvidence) as info:
        verify_bundle(bundle)
    assert info.value.check == "log_index"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": "interop-evidence/2"}, "format"),
        ({"format": None}, "format"),
        ({"family": "cosmos"}, "family"),
        ({"family": []}, "family"),
        ({"family": {}}, "family"),
    ],
)
def test_unknown_versions_and_families_are_not_bundles(change: dict[str, Any], field: str) -> None:
    """Unknown format versions and families are rejected as not-a-bundle."""
    doc: dict[str, Any] = {"format": "interop-evidence/1", "family": "evm"} | change
    with pytest.raises(BundleFormatError) as info:
        parse_bundle(doc)
    assert info.value.field == field


@pytest.mark.parametrize("document", [[], "text", 3, None])
def test_non_objects_are_not_bundles(document: object) -> None:
    """A JSON value that is not an object is not a bundle."""
    with pytest.raises(BundleFormatError):
        parse_bundle(document)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"crypto": "sm3-sm2"}, "crypto"),
        ({"crypto": "md5"}, "crypto"),
        ({"chain_id": ""}, "chain_id"),
        ({"proof": "0x00"}, "proof"),
        ({"proof": [1]}, "proof[0]"),
        ({"log_index": -1}, "log_index"),
        ({"log_index": True}, "log_index"),
        ({"block": []}, "block"),
        ({"trust": None}, "trust"),
    ],
)
def test_bad_envelope_fields_name_the_field(change: dict[str, Any], field: str) -> None:
    """Each malformed envelope field is reported with its path."""
    doc: dict[str, Any] = {
        "format": "interop-evidence/1",
        "family": "evm",
        "chain_id": "c",
        "crypto": "keccak256-secp256k1",
        "block": {},
        "receipt": {},
        "proof": [],
        "trust": {},
    } | change
    with pytest.raises(MalformedEvidence) as info:
        parse_bundle(doc)
    assert info.value.field == field


@pytest.mark.vectors
def test_fisco_trust_entries_are_validated(shared_vector: VectorLoader) -> None:
    """A duplicated trusted node id or a zero weight is rejected with its path."""
    bundle = _fisco_bundle(shared_vector)
    bundle["trust"]["sealers"][1] = dict(bundle["trust"]["sealers"][0])
    with pytest.raises(MalformedEvidence) as info:
        verify_bundle(bundle)
    assert info.value.field == "trust.sealers[1].node_id"
    bundle = _fisco_bundle(shared_vector)
    bundle["trust"]["sealers"][2]["weight"] = 0
    with pytest.raises(MalformedEvidence) as info:
        verify_bundle(bundle)
    assert info.value.field == "trust.sealers[2].weight"


@pytest.mark.vectors
def test_evm_receipt_block_number_must_match_the_header(shared_vector: VectorLoader) -> None:
    """receipt.blockNumber (a hex quantity) naming another block fails check receipt_block."""
    bundle = _evm_bundle(shared_vector)
    assert bundle["receipt"]["blockNumber"] == hex(19432673)
    for other in (hex(19432672), hex(19432674), "0x0"):
        bundle["receipt"]["blockNumber"] = other
        with pytest.raises(ProofMismatch) as info:
            verify_bundle(bundle)
        assert info.value.check == "receipt_block"
        assert (info.value.expected, info.value.computed) == ("19432673", str(int(other, 16)))
    bundle["receipt"]["blockNumber"] = None
    assert verify_bundle(bundle).block_number == 19432673


@pytest.mark.vectors
def test_evm_receipt_block_number_is_a_quantity(shared_vector: VectorLoader) -> None:
    """The EVM claim is a JSON-RPC quantity: a decimal integer or a padded hex is malformed."""
    bundle = _evm_bundle(shared_vector)
    for bad in (19432673, "19432673", "0x012884e1"):
        bundle["receipt"]["blockNumber"] = bad
        with pytest.raises(MalformedEvidence) as info:
            verify_bundle(bundle)
        assert info.value.field == "receipt.blockNumber"
