"""FISCO BCOS 3.x transaction hashes (both nonce forms, v0/v1/v2) and sender recovery."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import VectorLoader, load_shared_vector
from verifier.errors import MalformedEvidence, VerificationError
from verifier.fisco.transaction import (
    compute_transaction_hash,
    compute_transaction_hash_from_fields,
    nonce_encoding_for_version,
    recover_transaction_sender,
)
from verifier.hashing import CryptoSuite, keccak256, sm3
from verifier.merkle.fisco import compute_merkle_root
from verifier.signatures import sm2

WECROSS = "fisco/wecross_bcos3_vectors.json"
DOC = "fisco/fisco_doc_examples.json"
SECP = CryptoSuite.KECCAK256_SECP256K1


def _b(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


def _tars_fields(data: bytes) -> dict[int, Any]:
    """A minimal TARS reader (ints, strings, simple lists, nested structs) for the doc tx."""

    def read(pos: int) -> tuple[dict[int, Any], int]:
        fields: dict[int, Any] = {}
        while pos < len(data):
            head = data[pos]
            tag, kind, pos = head >> 4, head & 0x0F, pos + 1
            if tag == 15:
                tag, pos = data[pos], pos + 1
            if kind == 11:  # struct end
                return fields, pos
            if kind in (0, 1, 2, 3):
                size = 1 << kind
                fields[tag] = int.from_bytes(data[pos : pos + size], "big", signed=True)
                pos += size
            elif kind == 12:
                fields[tag] = 0
            elif kind in (6, 7):
                size_len = 1 if kind == 6 else 4
                size = int.from_bytes(data[pos : pos + size_len], "big")
                pos += size_len
                fields[tag], pos = data[pos : pos + size], pos + size
            elif kind == 13:  # simple list: head(0, int8), then the length as a TARS int
                length_fields, pos = read_one(pos + 1)
                fields[tag], pos = data[pos : pos + length_fields], pos + length_fields
            elif kind == 10:
                fields[tag], pos = read(pos)
            else:
                raise AssertionError(f"TARS type {kind} not needed here")
        return fields, pos

    def read_one(pos: int) -> tuple[int, int]:
        kind = data[pos] & 0x0F
        if kind == 12:
            return 0, pos + 1
        size = 1 << kind
        return int.from_bytes(data[pos + 1 : pos + 1 + size], "big"), pos + 1 + size

    return read(0)[0]


# --- real vectors -------------------------------------------------------------------------


@pytest.mark.vectors
@pytest.mark.parametrize("key", ["tx", "tx0"])
def test_wecross_tx_hashes_decimal_nonce(shared_vector: VectorLoader, key: str) -> None:
    """Node 3.2.0 prints the raw decimal nonce string; hashing it reproduces the tx hash."""
    tx = shared_vector(WECROSS)[key]
    block = shared_vector(WECROSS)["block" if key == "tx" else "block0"]
    assert nonce_encoding_for_version(block["version"]) == "decimal"
    digest = compute_transaction_hash(tx, keccak256, nonce_encoding="decimal")
    assert digest == _b(tx["hash"])
    if len(tx["nonce"]) % 2:  # a decimal nonce of odd length is not even valid hex
        with pytest.raises(MalformedEvidence, match=r"tx\.nonce"):
            compute_transaction_hash(tx, keccak256, nonce_encoding="hex")
    else:
        assert compute_transaction_hash(tx, keccak256, nonce_encoding="hex") != digest
    sender = recover_transaction_sender(digest, _b(tx["signature"]), SECP)
    assert sender == _b(tx["from"])


@pytest.mark.vectors
def test_doc_keccak_tx_hex_nonce_and_sender(shared_vector: VectorLoader) -> None:
    """The doc keccak tx (node >= 3.3, hex nonce) hashes to 0x51a375e5… from 0x6e6057d5…."""
    tx = shared_vector(DOC)["keccak_chain"]["transaction"]
    digest = compute_transaction_hash(tx, keccak256, nonce_encoding="hex")
    assert digest.hex().startswith("51a375e5")
    assert digest == _b(tx["hash"])
    sender = recover_transaction_sender(digest, _b(tx["signature"]), SECP)
    assert "0x" + sender.hex() == tx["from"]
    assert sender.hex().startswith("6e6057d5")


@pytest.mark.vectors
def test_doc_sm_tars_tx_hash_and_sm2_sender(shared_vector: VectorLoader) -> None:
    """The doc's TARS SM tx: SM3 over its fields = its dataHash; SM2 r‖s‖pub gives the sender."""
    sm_chain = shared_vector(DOC)["sm_chain"]
    fields = _tars_fields(_b(sm_chain["send_transaction_hex"]))
    data = fields[1]
    digest = compute_transaction_hash_from_fields(
        data[1],
        data[2].decode(),
        data[3].decode(),
        data[4],
        data[5],
        data.get(6, b"").decode(),
        data[7],
        data.get(8, b"").decode(),
        hasher=sm3,
    )
    assert digest == fields[2] == _b(sm_chain["send_transaction_data_hash"])
    sender = recover_transaction_sender(digest, fields[3], CryptoSuite.SM3_SM2)
    assert sender == _b(sm_chain["send_transaction_sender"])
    assert sender == _b(sm_chain["deploy_receipt_block2"]["from"])


@pytest.mark.vectors
def test_doc_sm_block2_tx_is_its_txs_root(shared_vector: VectorLoader) -> None:
    """Block 2 holds one tx, 0xdce357d4…: txsRoot is that hash (the doc has no tx JSON for it)."""
    sm_chain = shared_vector(DOC)["sm_chain"]
    tx_hash = _b(sm_chain["deploy_receipt_block2"]["transactionHash"])
    assert tx_hash.hex().startswith("dce357d4")
    assert compute_merkle_root([tx_hash], sm3) == _b(sm_chain["block2_header"]["txsRoot"])


# --- nonce form and versions --------------------------------------------------------------


def test_nonce_encoding_for_version() -> None:
    """Compatibility 3.3.0 and later print hex nonces; 3.2.x and earlier the raw string."""
    assert nonce_encoding_for_version(0x03030000) == "hex"
    assert nonce_encoding_for_version(0x03060000) == "hex"
    assert nonce_encoding_for_version(0x03020000) == "decimal"
    assert nonce_encoding_for_version(0x03000000) == "decimal"
    with pytest.raises(MalformedEvidence):
        nonce_encoding_for_version("3.3.0")  # type: ignore[arg-type]


def _tx(version: int = 0) -> dict[str, Any]:
    tx: dict[str, Any] = {
        "version": version,
        "chainID": "chain0",
        "groupID": "group0",
        "blockLimit": 600,
        "nonce": b"12345678901234567890".hex(),
        "to": "0x41a1281dba209614f2ada8ecc75fd957ad179d7b",
        "input": "0x4ed3885e",
        "abi": "",
    }
    if version >= 1:
        tx |= {
            "value": "0x1",
            "gasPrice": "0x2",
            "gasLimit": 3_000_000,
            "maxFeePerGas": "",
            "maxPriorityFeePerGas": "",
        }
    if version >= 2:
        tx["extension"] = [1, 2, 255]
    return tx


def _from_fields(version: int, **extra: Any) -> bytes:
    return compute_transaction_hash_from_fields(
        version,
        "chain0",
        "group0",
        600,
        b"12345678901234567890",
        "0x41a1281dba209614f2ada8ecc75fd957ad179d7b",
        bytes.fromhex("4ed3885e"),
        "",
        hasher=keccak256,
        **extra,
    )


def test_json_and_fields_agree_for_every_version() -> None:
    """The JSON path and the typed path give the same hash for v0, v1 and v2."""
    v1 = {"value": "0x1", "gas_price": "0x2", "gas_limit": 3_000_000}
    expected = {0: _from_fields(0), 1: _from_fields(1, **v1)}
    expected[2] = _from_fields(2, **v1, extension=b"\x01\x02\xff")
    assert len(set(expected.values())) == 3
    for version, digest in expected.items():
        assert compute_transaction_hash(_tx(version), keccak256, nonce_encoding="hex") == digest
    v2 = _tx(2) | {"extension": "0x0102ff"}
    assert compute_transaction_hash(v2, keccak256, nonce_encoding="hex") == expected[2]


def test_v0_hash_by_hand() -> None:
    """v0 is H(be32 version ‖ chain ‖ group ‖ be64 blockLimit ‖ nonce ‖ to ‖ input ‖ abi)."""
    manual = (
        (0).to_bytes(4, "big")
        + b"chain0group0"
        + (600).to_bytes(8, "big")
        + b"12345678901234567890"
        + b"0x41a1281dba209614f2ada8ecc75fd957ad179d7b"
        + bytes.fromhex("4ed3885e")
    )
    assert _from_fields(0) == keccak256(manual)


def test_later_fields_on_an_older_version_are_refused() -> None:
    """v1 fields on v0, or an extension on v1, would not be hashed, so they are refused."""
    with pytest.raises(MalformedEvidence):
        _from_fields(0, value="0x1")
    with pytest.raises(MalformedEvidence):
        _from_fields(1, extension=b"\x01")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", "0"),
        ("blockLimit", "600"),
        ("nonce", "0x3132"),
        ("nonce", "313"),
        ("input", "4ed3885e"),
        ("to", None),
        ("abi", 0),
        ("chainID", "\ud800"),
    ],
)
def test_strict_tx_encodings(field: str, value: Any) -> None:
    """Wrongly encoded tx fields are MalformedEvidence naming the field."""
    tx = _tx() | {field: value}
    with pytest.raises(MalformedEvidence, match=field):
        compute_transaction_hash(tx, keccak256, nonce_encoding="hex")


def test_missing_v1_field() -> None:
    """A v1 tx without gasLimit is MalformedEvidence, not a KeyError."""
    tx = _tx(1)
    del tx["gasLimit"]
    with pytest.raises(MalformedEvidence, match="gasLimit"):
        compute_transaction_hash(tx, keccak256, nonce_encoding="hex")


# --- senders ------------------------------------------------------------------------------


def test_sm2_sender_round_trip_and_tampering() -> None:
    """SM2 r‖s‖pub: the sender is sm3(pub)[12:]; any other hash or key fails."""
    secret = keccak256(b"sm2 tx key")
    key = sm2.public_key(secret)
    digest = _from_fields(0)
    signature = sm2.sign(secret, digest) + key
    assert recover_transaction_sender(digest, signature, CryptoSuite.SM3_SM2) == sm3(key)[12:]
    with pytest.raises(VerificationError) as info:
        recover_transaction_sender(keccak256(digest), signature, CryptoSuite.SM3_SM2)
    assert info.value.check == "transaction_signature"
    other = sm2.public_key(keccak256(b"other"))
    with pytest.raises(VerificationError):
        recover_transaction_sender(digest, signature[:64] + other, CryptoSuite.SM3_SM2)
    with pytest.raises(MalformedEvidence):
        recover_transaction_sender(digest, signature[:64], CryptoSuite.SM3_SM2)


@pytest.mark.vectors
def test_secp_sender_rejects_bad_signatures(shared_vector: VectorLoader) -> None:
    """A 64-byte or bad-v secp256k1 tx signature fails with check=transaction_signature."""
    tx = shared_vector(DOC)["keccak_chain"]["transaction"]
    digest, signature = _b(tx["hash"]), _b(tx["signature"])
    with pytest.raises(MalformedEvidence):
        recover_transaction_sender(digest, signature[:64], SECP)
    with pytest.raises(VerificationError) as info:
        recover_transaction_sender(digest, signature[:64] + b"\x1c", SECP)
    assert info.value.check == "transaction_signature"
    tampered = recover_transaction_sender(keccak256(digest), signature, SECP)
    assert tampered != _b(tx["from"])


_CHANGES = ["version", "chainID", "groupID", "blockLimit", "nonce", "to", "input", "abi"]


@pytest.mark.vectors
@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(_CHANGES), byte=st.integers(0, 10_000))
def test_any_hashed_tx_field_change_changes_the_hash(field: str, byte: int) -> None:
    """Changing any hashed field of the WeCross tx changes (or refuses) its hash."""
    tx = copy.deepcopy(load_shared_vector(WECROSS)["tx"])
    value = tx[field]
    if isinstance(value, int):
        tx[field] = value + 1 + byte % 7
    elif field == "input":
        raw = bytearray(_b(value))
        raw[byte % len(raw)] ^= 0x01
        tx[field] = "0x" + raw.hex()
    else:
        text = value or "x"
        pos = byte % len(text)
        tx[field] = text[:pos] + ("1" if text[pos] != "1" else "2") + text[pos + 1 :]
    try:
        digest = compute_transaction_hash(tx, keccak256, nonce_encoding="decimal")
    except MalformedEvidence:
        return
    assert digest != _b(tx["hash"])
