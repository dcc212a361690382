"""secp256k1 and SM2 signatures as FISCO uses them, and the weighted PBFT quorum."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import VectorLoader
from tests.unit.verifier.fisco._synthetic import build_header, private_keys, trusted_set
from verifier.errors import (
    DuplicateSigner,
    InvalidSignature,
    MalformedEvidence,
    QuorumNotReached,
    UnknownSigner,
    VerificationError,
)
from verifier.fisco.header import parse_header
from verifier.hashing import CryptoSuite, hasher_for, keccak256, sm3
from verifier.signatures import secp256k1, sm2
from verifier.signatures.quorum import quorum_threshold, verify_signature_list

SUITES = [pytest.param(s, id=s.value) for s in CryptoSuite]
MSG = keccak256(b"a header hash")


def _b(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


# --- secp256k1 ----------------------------------------------------------------------------


def test_secp256k1_known_key() -> None:
    """Private key 1 has the generator as public key and address 0x7e5f…5bdf."""
    key = secp256k1.public_key((1).to_bytes(32, "big"))
    assert key.hex().startswith("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
    assert secp256k1.address(key, keccak256).hex() == "7e5f4552091a69125d5dfcb7b8c2659029395bdf"


def test_secp256k1_round_trip() -> None:
    """sign -> 65 bytes with v in {0,1}, low s; recover gives the key; verify agrees."""
    secret = private_keys(CryptoSuite.KECCAK256_SECP256K1)[0]
    signature = secp256k1.sign(secret, MSG)
    assert len(signature) == 65
    assert signature[64] in (0, 1)
    assert int.from_bytes(signature[32:64], "big") <= secp256k1.CURVE_ORDER // 2
    key = secp256k1.public_key(secret)
    assert secp256k1.recover_public_key(MSG, signature) == key
    assert secp256k1.verify(key, MSG, signature)
    assert not secp256k1.verify(key, keccak256(MSG), signature)


def test_secp256k1_high_s_is_accepted_like_the_node() -> None:
    """The high-s twin (s' = n - s, v flipped) recovers the same key, as libsecp256k1 does."""
    secret = private_keys(CryptoSuite.KECCAK256_SECP256K1)[1]
    signature = secp256k1.sign(secret, MSG)
    s = int.from_bytes(signature[32:64], "big")
    twin = signature[:32] + (secp256k1.CURVE_ORDER - s).to_bytes(32, "big")
    twin += bytes([signature[64] ^ 1])
    assert secp256k1.recover_public_key(MSG, twin) == secp256k1.public_key(secret)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda sig: sig[:64] + b"\x1b", "recovery id"),
        (lambda sig: sig[:64] + b"\x02", "recovery id"),
        (lambda sig: bytes(32) + sig[32:], "r or s"),
        (lambda sig: sig[:32] + bytes(32) + sig[64:], "r or s"),
        (lambda sig: secp256k1.CURVE_ORDER.to_bytes(32, "big") + sig[32:], "r or s"),
        (lambda sig: sig[:32] + b"\xff" * 32 + sig[64:], "r or s"),
    ],
)
def test_secp256k1_rejects_bad_signatures(mutate: Any, message: str) -> None:
    """v outside {0,1} and r/s outside 1..n-1 raise a check='signature' error."""
    signature = mutate(secp256k1.sign(private_keys(CryptoSuite.KECCAK256_SECP256K1)[0], MSG))
    with pytest.raises(VerificationError, match=message) as info:
        secp256k1.recover_public_key(MSG, signature)
    assert info.value.check == "signature"
    assert not secp256k1.verify(b"\x00" * 64, MSG, signature)


def test_secp256k1_rejects_bad_lengths_and_keys() -> None:
    """Wrong lengths and out-of-range private keys are MalformedEvidence."""
    with pytest.raises(MalformedEvidence):
        secp256k1.recover_public_key(MSG, b"\x01" * 64)
    with pytest.raises(MalformedEvidence):
        secp256k1.recover_public_key(MSG[:31], b"\x01" * 65)
    for secret in (bytes(32), secp256k1.CURVE_ORDER.to_bytes(32, "big"), b"\x01" * 31):
        with pytest.raises(MalformedEvidence):
            secp256k1.sign(secret, MSG)


# --- SM2 ----------------------------------------------------------------------------------


def test_sm2_round_trip() -> None:
    """SM2 sign/verify with ZA (default ID); another message or key fails."""
    secrets = private_keys(CryptoSuite.SM3_SM2, 2)
    key = sm2.public_key(secrets[0])
    signature = sm2.sign(secrets[0], MSG)
    assert len(signature) == 64
    assert sm2.verify(key, MSG, signature)
    assert not sm2.verify(key, sm3(MSG), signature)
    assert not sm2.verify(sm2.public_key(secrets[1]), MSG, signature)


def test_sm2_rejects_out_of_range_values() -> None:
    """r or s of 0 or >= n, and a key off the curve, verify as False."""
    secret = private_keys(CryptoSuite.SM3_SM2)[0]
    key, signature = sm2.public_key(secret), sm2.sign(secret, MSG)
    order = sm2.CURVE_ORDER.to_bytes(32, "big")
    for bad in (bytes(32) + signature[32:], signature[:32] + bytes(32), order + signature[32:]):
        assert not sm2.verify(key, MSG, bad)
    assert not sm2.verify(key[:32] + bytes(32), MSG, signature)
    with pytest.raises(MalformedEvidence):
        sm2.verify(key, MSG, signature + b"\x00")
    with pytest.raises(MalformedEvidence):
        sm2.sign(bytes(32), MSG)


@pytest.mark.vectors
def test_sm2_doc_block2_signatures(shared_vector: VectorLoader) -> None:
    """The doc SM chain's block 2 signatures verify with ZA, not with the hash used as e."""
    block = shared_vector("fisco/fisco_doc_examples.json")["sm_chain"]["block2_header"]
    digest = _b(block["hash"])
    for entry in block["signatureList"]:
        key = _b(block["sealerList"][entry["sealerIndex"]])
        assert sm2.verify(key, digest, _b(entry["signature"]))
        assert not sm2.verify(key, sm3(digest), _b(entry["signature"]))


# --- quorum -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "need"),
    [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (6, 5), (7, 5), (10, 7), (100, 67)],
)
def test_quorum_threshold(total: int, need: int) -> None:
    """need = total - (total - 1) // 3."""
    assert quorum_threshold(total) == need


def test_quorum_threshold_rejects_empty_sets() -> None:
    """A total weight below 1 is malformed, not a quorum of 1."""
    with pytest.raises(MalformedEvidence):
        quorum_threshold(0)


def _check(block: dict[str, Any], suite: CryptoSuite, trusted: dict[bytes, Any]) -> Any:
    header = parse_header(block, hasher_for(suite.hash_scheme))
    return verify_signature_list(header.hash, header.sealer_list, header.signatures, trusted, suite)


@pytest.mark.parametrize("suite", SUITES)
def test_quorum_boundaries_equal_weights(suite: CryptoSuite) -> None:
    """Weights [1,1,1,1]: 3 signers reach the quorum of 3, 2 do not."""
    secrets = private_keys(suite)
    block = build_header(suite, secrets, [0, 1, 2, 3])
    result = _check(block, suite, trusted_set(block))
    assert (result.have, result.need, result.total, result.signers) == (4, 3, 4, (0, 1, 2, 3))
    block["signatureList"] = block["signatureList"][1:]
    assert _check(block, suite, trusted_set(block)).have == 3
    block["signatureList"] = block["signatureList"][1:]
    with pytest.raises(QuorumNotReached) as info:
        _check(block, suite, trusted_set(block))
    assert (info.value.have, info.value.need, info.value.total) == (2, 3, 4)


@pytest.mark.parametrize("suite", SUITES)
def test_quorum_boundaries_unequal_weights(suite: CryptoSuite) -> None:
    """Weights [3,1,1,1] (need 5): {0,1,2} is enough, {1,2,3} and {0,1} are not."""
    secrets = private_keys(suite)
    block = build_header(suite, secrets, [0, 1, 2, 3], weights=[3, 1, 1, 1])
    trusted = trusted_set(block)
    full = block["signatureList"]
    block["signatureList"] = full[:3]
    assert _check(block, suite, trusted).have == 5
    for subset in (full[1:], full[:2]):
        block["signatureList"] = subset
        with pytest.raises(QuorumNotReached) as info:
            _check(block, suite, trusted)
        assert info.value.need == 5
        assert info.value.total == 6


def test_weights_come_from_the_trusted_set() -> None:
    """The header claims [3,1,1,1]; the trusted [1,1,1,1] decides, and vice versa."""
    suite = CryptoSuite.KECCAK256_SECP256K1
    secrets = private_keys(suite)
    block = build_header(suite, secrets, [0, 1], weights=[3, 1, 1, 1])
    with pytest.raises(QuorumNotReached):
        _check(block, suite, trusted_set(block, [1, 1, 1, 1]))
    block = build_header(suite, secrets, [0, 1], weights=[1, 1, 1, 1])
    assert _check(block, suite, trusted_set(block, [4, 1, 1, 1])).have == 5


def test_trusted_keys_missing_from_the_header_still_count_in_total() -> None:
    """A trusted sealer absent from the header raises the total (and the need)."""
    suite = CryptoSuite.KECCAK256_SECP256K1
    block = build_header(suite, private_keys(suite), [0, 1, 2])
    trusted = trusted_set(block) | {b"\x07" * 64: 2}
    with pytest.raises(QuorumNotReached) as info:
        _check(block, suite, trusted)
    assert (info.value.have, info.value.need, info.value.total) == (3, 5, 6)


@pytest.mark.parametrize("suite", SUITES)
def test_duplicate_signer(suite: CryptoSuite) -> None:
    """The same sealer twice raises DuplicateSigner at the second entry."""
    block = build_header(suite, private_keys(suite), [0, 1, 1])
    with pytest.raises(DuplicateSigner) as info:
        _check(block, suite, trusted_set(block))
    assert info.value.index == 2


def test_duplicate_key_under_two_indices() -> None:
    """A header listing one key twice cannot count it twice."""
    suite = CryptoSuite.KECCAK256_SECP256K1
    secrets = private_keys(suite)
    block = build_header(suite, [secrets[0], secrets[1], secrets[0], secrets[2]], [0, 1, 2])
    trusted = trusted_set(build_header(suite, secrets, []))
    with pytest.raises(DuplicateSigner) as info:
        _check(block, suite, trusted)
    assert info.value.index == 2


@pytest.mark.parametrize("suite", SUITES)
def test_untrusted_valid_signer_is_skipped(suite: CryptoSuite) -> None:
    """A valid signature by a listed key outside the trusted set is skipped, not counted."""
    secrets = private_keys(suite, 5)
    block = build_header(suite, [*secrets[:3], secrets[4]], [0, 1, 2, 3])
    trusted = trusted_set(build_header(suite, secrets[:4], []))
    result = _check(block, suite, trusted)
    assert (result.have, result.need, result.total) == (3, 3, 4)
    assert result.signers == (0, 1, 2)
    assert result.skipped == (3,)


@pytest.mark.parametrize("suite", SUITES)
def test_untrusted_signer_does_not_fill_a_shortfall(suite: CryptoSuite) -> None:
    """Two trusted signers and a new sealer: the new one adds nothing; have 2, need 3."""
    secrets = private_keys(suite, 5)
    block = build_header(suite, [*secrets[:3], secrets[4]], [1, 2, 3])
    trusted = trusted_set(build_header(suite, secrets[:4], []))
    with pytest.raises(QuorumNotReached, match="have 2, need 3") as info:
        _check(block, suite, trusted)
    assert (info.value.have, info.value.need) == (2, 3)


@pytest.mark.parametrize("suite", SUITES)
def test_untrusted_signer_with_a_bad_signature_fails(suite: CryptoSuite) -> None:
    """Skipping is for valid signatures only: a forged one from an untrusted key fails."""
    secrets = private_keys(suite, 5)
    block = build_header(suite, [*secrets[:3], secrets[4]], [0, 1, 2])
    forged = build_header(suite, [*secrets[:3], secrets[3]], [3])["signatureList"][0]
    block["signatureList"].append(forged)
    trusted = trusted_set(build_header(suite, secrets[:4], []))
    with pytest.raises(InvalidSignature) as info:
        _check(block, suite, trusted)
    assert info.value.index == 3


@pytest.mark.parametrize("suite", SUITES)
def test_sealer_index_out_of_range(suite: CryptoSuite) -> None:
    """sealerIndex 4 of 4 keys, or a negative one, is rejected naming the list position."""
    block = build_header(suite, private_keys(suite), [0, 1, 2])
    block["signatureList"][1]["sealerIndex"] = 4
    with pytest.raises(UnknownSigner) as info:
        _check(block, suite, trusted_set(block))
    assert info.value.index == 1
    header = parse_header(
        build_header(suite, private_keys(suite), []), hasher_for(suite.hash_scheme)
    )
    with pytest.raises(UnknownSigner):
        verify_signature_list(
            header.hash, header.sealer_list, [(-1, b"\x00" * 65)], trusted_set(block), suite
        )


@pytest.mark.parametrize("suite", SUITES)
def test_signature_of_the_wrong_length(suite: CryptoSuite) -> None:
    """A 65-byte SM2 or 64-byte secp256k1 signature is an InvalidSignature."""
    block = build_header(suite, private_keys(suite), [0, 1, 2])
    block["signatureList"][0]["signature"] += "00"
    with pytest.raises(InvalidSignature) as info:
        _check(block, suite, trusted_set(block))
    assert info.value.index == 0


@pytest.mark.parametrize("suite", SUITES)
def test_signature_by_another_sealer(suite: CryptoSuite) -> None:
    """Sealer 2's signature filed under sealerIndex 1 is invalid."""
    block = build_header(suite, private_keys(suite), [0, 2, 3])
    block["signatureList"][1]["sealerIndex"] = 1
    with pytest.raises(InvalidSignature) as info:
        _check(block, suite, trusted_set(block))
    assert info.value.index == 1


def test_bad_trusted_sets() -> None:
    """An empty, zero-weight or malformed trusted set is MalformedEvidence."""
    suite = CryptoSuite.KECCAK256_SECP256K1
    block = build_header(suite, private_keys(suite), [0, 1, 2])
    keys = list(trusted_set(block))
    bad: list[dict[bytes, Any]] = [{}, dict.fromkeys(keys, 0), {b"short": 1}, {keys[0]: -1}]
    for trusted in [*bad, {keys[0]: True}]:
        with pytest.raises(MalformedEvidence):
            _check(block, suite, trusted)


@settings(max_examples=60, deadline=None)
@given(
    suite=st.sampled_from(list(CryptoSuite)),
    entry=st.integers(0, 2),
    byte=st.integers(0, 64),
    xor=st.integers(1, 255),
)
def test_any_byte_flip_in_a_signature_is_rejected(
    suite: CryptoSuite, entry: int, byte: int, xor: int
) -> None:
    """Flipping any byte of any signature of a 3-of-4 header fails the list."""
    block = build_header(suite, private_keys(suite), [0, 1, 2])
    trusted = trusted_set(block)
    raw = bytearray(_b(block["signatureList"][entry]["signature"]))
    raw[byte % len(raw)] ^= xor
    block["signatureList"][entry]["signature"] = "0x" + raw.hex()
    with pytest.raises(InvalidSignature) as info:
        _check(block, suite, trusted)
    assert info.value.index == entry


# --- real headers -------------------------------------------------------------------------


@pytest.mark.vectors
@pytest.mark.parametrize(("key", "signers"), [("block", 4), ("block0", 3)])
def test_wecross_headers_reach_quorum(shared_vector: VectorLoader, key: str, signers: int) -> None:
    """WeCross block 60 (4/4) and block 72 (3/4), trusting their own sealerList."""
    block = shared_vector("fisco/wecross_bcos3_vectors.json")[key]
    suite = CryptoSuite.KECCAK256_SECP256K1
    result = _check(block, suite, trusted_set(block))
    assert (result.have, result.need, result.total) == (signers, 3, 4)


@pytest.mark.vectors
def test_doc_sm_block2_reaches_quorum(shared_vector: VectorLoader) -> None:
    """The doc SM chain's block 2: SM3 header hash, 3 SM2 signatures, 3 of 4."""
    block = shared_vector("fisco/fisco_doc_examples.json")["sm_chain"]["block2_header"]
    result = _check(block, CryptoSuite.SM3_SM2, trusted_set(block))
    assert (result.have, result.need, result.signers) == (3, 3, (0, 1, 2))


@pytest.mark.vectors
def test_wecross_block72_minus_one_signature(shared_vector: VectorLoader) -> None:
    """Block 72 with one of its 3 signatures removed is one short of the quorum."""
    block = copy.deepcopy(shared_vector("fisco/wecross_bcos3_vectors.json")["block0"])
    block["signatureList"].pop(1)
    with pytest.raises(QuorumNotReached) as info:
        _check(block, CryptoSuite.KECCAK256_SECP256K1, trusted_set(block))
    assert (info.value.have, info.value.need) == (2, 3)


def test_negative_trusted_weight_is_refused_even_when_the_total_stays_positive() -> None:
    """A weight of -2 would shrink the total (and the quorum) to what one signer holds."""
    suite = CryptoSuite.KECCAK256_SECP256K1
    block = build_header(suite, private_keys(suite), [0])
    for weights in ([1, 1, 1, -2], [5, -1, 1, 1], [1, 1, 1, -1]):
        with pytest.raises(MalformedEvidence) as info:
            _check(block, suite, trusted_set(block, weights))
        assert info.value.field == "trusted"
        assert info.value.check == "quorum"


def test_zero_trusted_weight_counts_nothing() -> None:
    """A trusted sealer of weight 0 may sign; it adds nothing to the weight nor the total."""
    suite = CryptoSuite.KECCAK256_SECP256K1
    block = build_header(suite, private_keys(suite), [0, 1, 2, 3])
    result = _check(block, suite, trusted_set(block, [0, 1, 1, 1]))
    assert (result.have, result.need, result.total, result.signers) == (3, 3, 3, (0, 1, 2, 3))
    block["signatureList"] = block["signatureList"][:3]
    with pytest.raises(QuorumNotReached) as info:
        _check(block, suite, trusted_set(block, [0, 1, 1, 1]))
    assert (info.value.have, info.value.need, info.value.total) == (2, 3, 3)


def test_bool_and_malformed_inputs_are_refused() -> None:
    """True is not a weight total nor a sealerIndex; a short hash or a 1-item entry is malformed."""
    suite = CryptoSuite.KECCAK256_SECP256K1
    block = build_header(suite, private_keys(suite), [0, 1, 2])
    header = parse_header(block, keccak256)
    trusted = trusted_set(block)
    for total in (True, "3", 0.5):
        with pytest.raises(MalformedEvidence):
            quorum_threshold(total)  # type: ignore[arg-type]
    with pytest.raises(MalformedEvidence) as info:
        verify_signature_list(
            header.hash[:31], header.sealer_list, header.signatures, trusted, suite
        )
    assert info.value.field == "header_hash"
    signature = header.signatures[1][1]
    for entry in ((1,), (1, signature, b""), "ab", (True, signature)):
        with pytest.raises(MalformedEvidence):
            verify_signature_list(header.hash, header.sealer_list, [entry], trusted, suite)  # type: ignore[list-item]


def test_a_single_sealer_of_weight_one_is_a_quorum() -> None:
    """Total weight 1 is a valid trusted set: its one signature is the quorum."""
    suite = CryptoSuite.KECCAK256_SECP256K1
    block = build_header(suite, private_keys(suite), [0])
    result = _check(block, suite, trusted_set(block, [1, 0, 0, 0]))
    assert (result.have, result.need, result.total) == (1, 1, 1)


@pytest.mark.parametrize("suite", SUITES)
def test_signature_length_error_says_what_it_got(suite: CryptoSuite) -> None:
    """The error names the expected and the received length, or "no" for a non-bytes value."""
    block = build_header(suite, private_keys(suite), [0, 1, 2])
    header = parse_header(block, hasher_for(suite.hash_scheme))
    want = len(header.signatures[0][1])
    bad: list[tuple[Any, str]] = [(header.signatures[0][1] + b"\x00", str(want + 1)), ("ab", "no")]
    for signature, got in bad:
        entries = [(0, signature), *header.signatures[1:]]
        with pytest.raises(InvalidSignature) as info:
            verify_signature_list(
                header.hash, header.sealer_list, entries, trusted_set(block), suite
            )
        assert info.value.reason.endswith(f"must be {want} bytes, got {got}")
