"""FISCO 3.x client transactions: the real SM tx decodes and re-encodes, hashes and signs."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.fisco.errors import TarsDecodeError, TransactionFieldError
from adapters.fisco.tars import TarsWriter
from adapters.fisco.transaction import (
    SignedTransaction,
    TransactionData,
    account_address,
    build_transaction,
    compute_transaction_hash,
    decode_transaction,
    encode_transaction,
    sign_transaction,
    transaction_hex,
)
from tests.conftest import VectorLoader
from verifier.fisco.transaction import recover_transaction_sender
from verifier.hashing import CryptoSuite, keccak256, sm3
from verifier.signatures import secp256k1, sm2

DOC = "fisco/fisco_doc_examples.json"
SECP_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
SM2_KEY = bytes.fromhex("3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8")
NONCE = "1234567890123456789012345678901234"
CALL = TransactionData(
    version=0,
    chain_id="chain0",
    group_id="group0",
    block_limit=600,
    nonce=NONCE,
    to="0x41a1281dba209614f2ada8ecc75fd957ad179d7b",
    input=bytes.fromhex("4ed3885e"),
)


def _sm_raw(shared_vector: VectorLoader) -> tuple[bytes, dict[str, Any]]:
    sm = shared_vector(DOC)["sm_chain"]
    return bytes.fromhex(sm["send_transaction_hex"].removeprefix("0x")), sm


@pytest.mark.vectors
def test_real_sm_transaction_decodes(shared_vector: VectorLoader) -> None:
    """The documentation's SM2-signed deploy decodes to its fields (no `to`, 1131-byte input)."""
    raw, _ = _sm_raw(shared_vector)
    tx = decode_transaction(raw)
    data = tx.data
    assert (data.version, data.chain_id, data.group_id, data.block_limit) == (
        0,
        "chain0",
        "group0",
        507,
    )
    assert (
        data.nonce
        == "62327837208662252231214097088146005568561078011697426024662115377181872860379"
    )
    assert data.to == ""
    assert len(data.input) == 1131
    assert data.abi.startswith('[{"inputs":[],"stateMutability":"nonpayable"')
    assert len(tx.signature) == 128
    assert (tx.import_time, tx.attribute, tx.sender, tx.extra_data) == (0, 0, b"", "")


@pytest.mark.vectors
def test_real_sm_transaction_hash_and_signature(shared_vector: VectorLoader) -> None:
    """SM3 over the decoded fields is the wire dataHash; SM2 r‖s‖pub verifies; sm3(pub) = sender."""
    raw, sm = _sm_raw(shared_vector)
    tx = decode_transaction(raw)
    expected = bytes.fromhex(sm["send_transaction_data_hash"].removeprefix("0x"))
    assert compute_transaction_hash(tx.data, CryptoSuite.SM3_SM2) == expected == tx.data_hash
    pub = tx.signature[64:]
    assert sm2.verify(pub, tx.data_hash, tx.signature[:64])
    assert "0x" + sm3(pub)[12:].hex() == sm["send_transaction_sender"]
    sender = recover_transaction_sender(tx.data_hash, tx.signature, CryptoSuite.SM3_SM2)
    assert "0x" + sender.hex() == sm["send_transaction_sender"]


@pytest.mark.vectors
def test_real_sm_transaction_reencodes_byte_exact(shared_vector: VectorLoader) -> None:
    """Our encoder omits the same empty optional fields as the real SDK: identical bytes."""
    raw, sm = _sm_raw(shared_vector)
    tx = decode_transaction(raw)
    assert encode_transaction(tx) == raw
    assert transaction_hex(tx) == sm["send_transaction_hex"]
    assert decode_transaction(encode_transaction(tx)) == tx


@pytest.mark.vectors
def test_real_sm_transaction_truncated_or_flipped(shared_vector: VectorLoader) -> None:
    """Cuts inside a field, and a bad type byte, raise TarsDecodeError with an offset."""
    raw, _ = _sm_raw(shared_vector)
    # 1584 and 1620 are field boundaries: a cut there is a valid shorter struct (checked below)
    assert decode_transaction(raw[:1584]).data_hash == b""
    for cut in (0, 1, 5, 25, 100, 1000, 1585, 1600, 1621, len(raw) - 1):
        with pytest.raises(TarsDecodeError) as info:
            decode_transaction(raw[:cut])
        assert 0 <= info.value.offset <= cut
    bad = bytearray(raw)
    bad[1] = 0x1E  # version's head: tag 1, type 14
    with pytest.raises(TarsDecodeError, match="unknown TARS type 14") as info:
        decode_transaction(bytes(bad))
    assert info.value.offset == 1


@pytest.mark.vectors
def test_keccak_transaction_hash_from_json_fields(shared_vector: VectorLoader) -> None:
    """The real keccak tx: data built from JSON (hex-of-string nonce) hashes to its `hash`."""
    tx = shared_vector(DOC)["keccak_chain"]["transaction"]
    data = TransactionData(
        version=tx["version"],
        chain_id=tx["chainID"],
        group_id=tx["groupID"],
        block_limit=tx["blockLimit"],
        nonce=bytes.fromhex(tx["nonce"]).decode("ascii"),
        to=tx["to"],
        input=bytes.fromhex(tx["input"].removeprefix("0x")),
        abi=tx["abi"],
    )
    tx_hash = compute_transaction_hash(data, CryptoSuite.KECCAK256_SECP256K1)
    assert "0x" + tx_hash.hex() == tx["hash"]
    signature = bytes.fromhex(tx["signature"].removeprefix("0x"))
    sender = recover_transaction_sender(tx_hash, signature, CryptoSuite.KECCAK256_SECP256K1)
    assert "0x" + sender.hex() == tx["from"]
    signed = SignedTransaction(data=data, data_hash=tx_hash, signature=signature)
    assert decode_transaction(encode_transaction(signed)) == signed


def test_secp256k1_signing_recovers_the_account() -> None:
    """A fresh secp256k1 signature is 65-byte r‖s‖v and recovers to account_address(key)."""
    signed = sign_transaction(CALL, SECP_KEY, CryptoSuite.KECCAK256_SECP256K1)
    assert signed.data_hash == compute_transaction_hash(CALL, CryptoSuite.KECCAK256_SECP256K1)
    assert len(signed.signature) == 65
    assert signed.signature[64] in (0, 1)
    pub = secp256k1.recover_public_key(signed.data_hash, signed.signature)
    address = account_address(SECP_KEY, CryptoSuite.KECCAK256_SECP256K1)
    assert "0x" + keccak256(pub)[12:].hex() == address
    # the well-known key of the Ethereum docs maps to its well-known address
    assert address == "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23"


def test_sm2_signing_carries_the_public_key() -> None:
    """A fresh SM2 signature is r‖s‖pub, verifies with ZA, and the sender is sm3(pub)[12:]."""
    signed = sign_transaction(CALL, SM2_KEY, CryptoSuite.SM3_SM2)
    assert len(signed.signature) == 128
    assert signed.signature[64:] == sm2.public_key(SM2_KEY)
    assert sm2.verify(signed.signature[64:], signed.data_hash, signed.signature[:64])
    sender = recover_transaction_sender(signed.data_hash, signed.signature, CryptoSuite.SM3_SM2)
    assert "0x" + sender.hex() == account_address(SM2_KEY, CryptoSuite.SM3_SM2)


def test_build_transaction_defaults_and_random_nonce() -> None:
    """build_transaction fills a random decimal nonce (a u64) and version 0; `to=""` deploys."""
    first = build_transaction(
        chain_id="chain0", group_id="group0", block_limit=501, to="", input=b"\x60\x80"
    )
    second = build_transaction(
        chain_id="chain0", group_id="group0", block_limit=501, to="", input=b"\x60\x80"
    )
    assert first.nonce.isdecimal()
    assert 1 <= len(first.nonce) <= 20
    assert first.nonce != second.nonce
    assert (first.version, first.abi, first.to) == (0, "", "")
    fixed = build_transaction(
        chain_id="c", group_id="g", block_limit=1, to="0x01", input=b"", nonce="7"
    )
    assert fixed.nonce == "7"
    signed = sign_transaction(first, SECP_KEY, CryptoSuite.KECCAK256_SECP256K1)
    assert b"\x06\x00" not in encode_transaction(signed)[:40]  # no empty `to` (tag 6)
    assert transaction_hex(signed).startswith("0x1a1c2606636861696e30")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"version": 3}, "version"),
        ({"version": -1}, "version"),
        ({"block_limit": 0}, "block_limit"),
        ({"block_limit": 1 << 63}, "block_limit"),
        ({"nonce": ""}, "nonce"),
        ({"chain_id": ""}, "chain_id"),
        ({"value": "0x1"}, "value"),
        ({"gas_limit": 10}, "gas_limit"),
        ({"version": 1, "gas_limit": -1}, "gas_limit"),
        ({"version": 1, "extension": b"\x01"}, "extension"),
    ],
)
def test_invalid_fields_are_refused_before_signing(changes: dict[str, Any], field: str) -> None:
    """Fields the node rejects, or that the hash would not cover, raise TransactionFieldError."""
    data = dataclasses.replace(CALL, **changes)
    with pytest.raises(TransactionFieldError) as info:
        sign_transaction(data, SECP_KEY, CryptoSuite.KECCAK256_SECP256K1)
    assert info.value.field == field


@pytest.mark.parametrize("suite", list(CryptoSuite))
@pytest.mark.parametrize("key", [b"", b"\x00" * 32, b"\xff" * 32])
def test_bad_private_keys_raise_typed(suite: CryptoSuite, key: bytes) -> None:
    """Short, zero or out-of-range private keys raise TransactionFieldError, not a crypto error."""
    with pytest.raises(TransactionFieldError) as info:
        sign_transaction(CALL, key, suite)
    assert info.value.field == "private_key"
    with pytest.raises(TransactionFieldError):
        account_address(key, suite)


def test_decode_requires_the_data_struct_and_right_types() -> None:
    """A Transaction without `data`, or with a string where dataHash bytes belong, is refused."""
    with pytest.raises(TarsDecodeError, match="required tag 1") as info:
        decode_transaction(b"")
    assert info.value.offset == 0
    w = TarsWriter()
    w.write_struct(1, b"")
    w.write_string(2, "not bytes")
    with pytest.raises(TarsDecodeError, match="tag 2: expected bytes") as info:
        decode_transaction(w.getvalue())
    assert info.value.offset == 2


_TEXT = st.text(max_size=30)
_DATA = st.builds(
    TransactionData,
    version=st.integers(min_value=0, max_value=2),
    chain_id=_TEXT,
    group_id=_TEXT,
    block_limit=st.integers(min_value=0, max_value=(1 << 63) - 1),
    nonce=_TEXT,
    to=_TEXT,
    input=st.binary(max_size=300),
    abi=st.one_of(_TEXT, st.just("x" * 400)),
    value=_TEXT,
    gas_price=_TEXT,
    gas_limit=st.integers(min_value=0, max_value=(1 << 63) - 1),
    max_fee_per_gas=_TEXT,
    max_priority_fee_per_gas=_TEXT,
    extension=st.binary(max_size=40),
)
_SIGNED = st.builds(
    SignedTransaction,
    data=_DATA,
    data_hash=st.binary(max_size=32),
    signature=st.binary(max_size=128),
    import_time=st.integers(min_value=0, max_value=(1 << 63) - 1),
    attribute=st.integers(min_value=-(1 << 31), max_value=(1 << 31) - 1),
    extra_data=_TEXT,
    sender=st.binary(max_size=20),
    tx_type=st.integers(min_value=0, max_value=1),
    extra_transaction_bytes=st.binary(max_size=40),
    extra_transaction_hash=st.binary(max_size=32),
)


@given(_SIGNED)
def test_encode_decode_round_trip(tx: SignedTransaction) -> None:
    """Any transaction, with or without optional fields, decodes to what was encoded."""
    assert decode_transaction(encode_transaction(tx)) == tx


@given(_SIGNED, st.data())
def test_byte_flips_raise_only_typed_errors(tx: SignedTransaction, data: st.DataObject) -> None:
    """Flipping any byte of an encoding either still decodes or raises TarsDecodeError."""
    raw = bytearray(encode_transaction(tx))
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[index] ^= data.draw(st.integers(min_value=1, max_value=255))
    with contextlib.suppress(TarsDecodeError):
        decode_transaction(bytes(raw))
