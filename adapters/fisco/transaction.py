"""Client-side FISCO BCOS 3.x transactions: build, hash, sign, TARS-encode and decode.

Wire layout (``bcos-tars-protocol`` ``Transaction.tars``)::

    Transaction{1 data: TransactionData, 2 dataHash, 3 signature, 4 importTime: long,
                5 attribute: int, 7 sender, 8 extraData: string, 9 type: byte,
                10 extraTransactionBytes, 11 extraTransactionHash}
    TransactionData{1 version: int, 2 chainID, 3 groupID, 4 blockLimit: long, 5 nonce,
                    6 to, 7 input: bytes, 8 abi, 9 value, 10 gasPrice, 11 gasLimit: long,
                    12 maxFeePerGas, 13 maxPriorityFeePerGas, 14 extension: bytes}

The encoder writes the fields that were ``require`` in the original 3.0 schema (version,
chainID, groupID, blockLimit, nonce, input) always and every optional field only when it is not
empty/zero, which is what the SDK that produced the documentation's real transaction did; the
decoder accepts any subset. The node hashes fields, never these bytes (see
``verifier.fisco.transaction``), so the layout choice cannot change a transaction hash.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from adapters.fisco.errors import TransactionFieldError
from adapters.fisco.tars import TarsStruct, TarsWriter, decode_struct
from verifier.errors import MalformedEvidence
from verifier.fisco.transaction import compute_transaction_hash_from_fields
from verifier.hashing import CryptoSuite, hasher_for
from verifier.signatures import secp256k1, sm2

_INT32 = 32
_MAX_VERSION = 2


@dataclass(frozen=True, slots=True)
class TransactionData:
    """The signed part of a transaction; ``nonce`` is the raw nonce string (decimal by SDKs)."""

    version: int
    chain_id: str
    group_id: str
    block_limit: int
    nonce: str
    to: str = ""
    input: bytes = b""
    abi: str = ""
    value: str = ""
    gas_price: str = ""
    gas_limit: int = 0
    max_fee_per_gas: str = ""
    max_priority_fee_per_gas: str = ""
    extension: bytes = b""


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    """A transaction as sent: data, its hash and signature, and the unhashed envelope fields."""

    data: TransactionData
    data_hash: bytes
    signature: bytes
    import_time: int = 0
    attribute: int = 0
    extra_data: str = ""
    sender: bytes = b""
    tx_type: int = 0
    extra_transaction_bytes: bytes = b""
    extra_transaction_hash: bytes = b""


def random_nonce() -> str:
    """A random u64 in decimal: at most 20 digits, the nonce form a FISCO log binding accepts.

    The C++ SDK concatenates two u64 (up to 40 digits); the verifier refuses nonces longer than
    20 digits for log evidence, because a longer digit run could hide an address's text where
    the transaction hash does not fix the boundary (docs/evidence-format.md).
    """
    return str(secrets.randbits(64))


def build_transaction(
    *,
    chain_id: str,
    group_id: str,
    block_limit: int,
    to: str,
    input: bytes,
    abi: str = "",
    nonce: str | None = None,
    version: int = 0,
) -> TransactionData:
    """A version-0 style transaction: ``to=""`` deploys ``input``; ``abi`` is for deploys."""
    data = TransactionData(
        version=version,
        chain_id=chain_id,
        group_id=group_id,
        block_limit=block_limit,
        nonce=random_nonce() if nonce is None else nonce,
        to=to,
        input=bytes(input),
        abi=abi,
    )
    check_transaction_data(data)
    return data


def check_transaction_data(data: TransactionData) -> None:
    """Raise :class:`TransactionFieldError` for fields the node rejects or the hash skips."""
    if not 0 <= data.version <= _MAX_VERSION:
        raise TransactionFieldError(f"unsupported version {data.version}", field="version")
    if not 0 < data.block_limit < 1 << 63:
        raise TransactionFieldError("must be within 1..2^63-1", field="block_limit")
    if not 0 <= data.gas_limit < 1 << 63:
        raise TransactionFieldError("must be within 0..2^63-1", field="gas_limit")
    if not data.chain_id or not data.group_id:
        raise TransactionFieldError("chain_id and group_id must not be empty", field="chain_id")
    if not data.nonce:
        raise TransactionFieldError("must not be empty", field="nonce")
    v1 = {
        "value": data.value,
        "gas_price": data.gas_price,
        "gas_limit": data.gas_limit,
        "max_fee_per_gas": data.max_fee_per_gas,
        "max_priority_fee_per_gas": data.max_priority_fee_per_gas,
    }
    for name, field in v1.items():
        if field and data.version < 1:
            raise TransactionFieldError("needs version >= 1 to be hashed", field=name)
    if data.extension and data.version < _MAX_VERSION:
        raise TransactionFieldError("needs version >= 2 to be hashed", field="extension")


def compute_transaction_hash(data: TransactionData, suite: CryptoSuite) -> bytes:
    """The 32-byte hash the node recomputes: the suite's hash over the data fields."""
    return compute_transaction_hash_from_fields(
        version=data.version,
        chain_id=data.chain_id,
        group_id=data.group_id,
        block_limit=data.block_limit,
        nonce=data.nonce.encode("utf-8"),
        to=data.to,
        input=data.input,
        abi=data.abi,
        value=data.value,
        gas_price=data.gas_price,
        gas_limit=data.gas_limit,
        max_fee_per_gas=data.max_fee_per_gas,
        max_priority_fee_per_gas=data.max_priority_fee_per_gas,
        extension=data.extension,
        hasher=hasher_for(suite.hash_scheme),
    )


def sign_transaction(
    data: TransactionData, private_key: bytes, suite: CryptoSuite
) -> SignedTransaction:
    """Hash and sign: secp256k1 gives 65 bytes ``r‖s‖v``, SM2 128 bytes ``r‖s‖pub``."""
    check_transaction_data(data)
    data_hash = compute_transaction_hash(data, suite)
    try:
        if suite is CryptoSuite.SM3_SM2:
            signature = sm2.sign(private_key, data_hash) + sm2.public_key(private_key)
        else:
            signature = secp256k1.sign(private_key, data_hash)
    except MalformedEvidence as exc:
        raise TransactionFieldError(exc.reason, field="private_key") from exc
    return SignedTransaction(data=data, data_hash=data_hash, signature=signature)


def account_address(private_key: bytes, suite: CryptoSuite) -> str:
    """``0x`` + 40 hex: the last 20 bytes of the suite's hash of the 64-byte public key."""
    try:
        if suite is CryptoSuite.SM3_SM2:
            pub = sm2.public_key(private_key)
        else:
            pub = secp256k1.public_key(private_key)
    except MalformedEvidence as exc:
        raise TransactionFieldError(exc.reason, field="private_key") from exc
    return "0x" + hasher_for(suite.hash_scheme)(pub)[12:].hex()


def encode_transaction(tx: SignedTransaction) -> bytes:
    """The TARS bytes of ``Transaction`` (the ``sendTransaction`` parameter, before hex)."""
    w = TarsWriter()
    w.write_struct(1, _encode_data(tx.data))
    _put_bytes(w, 2, tx.data_hash)
    _put_bytes(w, 3, tx.signature)
    _put_int(w, 4, tx.import_time)
    _put_int(w, 5, tx.attribute)
    _put_bytes(w, 7, tx.sender)
    _put_str(w, 8, tx.extra_data)
    _put_int(w, 9, tx.tx_type)
    _put_bytes(w, 10, tx.extra_transaction_bytes)
    _put_bytes(w, 11, tx.extra_transaction_hash)
    return w.getvalue()


def transaction_hex(signed: SignedTransaction) -> str:
    """``0x`` + hex of :func:`encode_transaction`, as ``sendTransaction`` takes it."""
    return "0x" + encode_transaction(signed).hex()


def decode_transaction(raw: bytes) -> SignedTransaction:
    """Parse TARS ``Transaction`` bytes; raises ``TarsDecodeError`` with the byte offset."""
    top = decode_struct(raw)
    data = top.struct_field(1, required=True)
    assert data is not None
    return SignedTransaction(
        data=_decode_data(data),
        data_hash=top.bytes_field(2),
        signature=top.bytes_field(3),
        import_time=top.int_field(4),
        attribute=top.int_field(5, bits=_INT32),
        sender=top.bytes_field(7),
        extra_data=top.str_field(8),
        tx_type=top.int_field(9, bits=8),
        extra_transaction_bytes=top.bytes_field(10),
        extra_transaction_hash=top.bytes_field(11),
    )


def _encode_data(data: TransactionData) -> bytes:
    w = TarsWriter()
    w.write_int(1, data.version)
    w.write_string(2, data.chain_id)
    w.write_string(3, data.group_id)
    w.write_int(4, data.block_limit)
    w.write_string(5, data.nonce)
    _put_str(w, 6, data.to)
    w.write_bytes(7, data.input)
    _put_str(w, 8, data.abi)
    _put_str(w, 9, data.value)
    _put_str(w, 10, data.gas_price)
    _put_int(w, 11, data.gas_limit)
    _put_str(w, 12, data.max_fee_per_gas)
    _put_str(w, 13, data.max_priority_fee_per_gas)
    _put_bytes(w, 14, data.extension)
    return w.getvalue()


def _decode_data(s: TarsStruct) -> TransactionData:
    return TransactionData(
        version=s.int_field(1, bits=_INT32),
        chain_id=s.str_field(2),
        group_id=s.str_field(3),
        block_limit=s.int_field(4),
        nonce=s.str_field(5),
        to=s.str_field(6),
        input=s.bytes_field(7),
        abi=s.str_field(8),
        value=s.str_field(9),
        gas_price=s.str_field(10),
        gas_limit=s.int_field(11),
        max_fee_per_gas=s.str_field(12),
        max_priority_fee_per_gas=s.str_field(13),
        extension=s.bytes_field(14),
    )


def _put_int(w: TarsWriter, tag: int, value: int) -> None:
    if value:
        w.write_int(tag, value)


def _put_str(w: TarsWriter, tag: int, value: str) -> None:
    if value:
        w.write_string(tag, value)


def _put_bytes(w: TarsWriter, tag: int, value: bytes) -> None:
    if value:
        w.write_bytes(tag, value)
