"""secp256k1 signatures in FISCO BCOS's 65-byte ``r ‖ s ‖ v`` form (``v`` the raw recovery id).

FISCO 3.x signs with WeDPR (libsecp256k1 ``sign_recoverable``: low-s, ``v`` in {0, 1}) and
verifies by recovering the public key and comparing it with the expected one
(``wedpr_secp256k1_verify``). libsecp256k1's recovery does not enforce low-s, so the node
accepts a high-s signature too; this module does the same (a high-s twin changes nothing that
is hashed: neither a transaction hash nor a header hash covers its signature, and each sealer
is counted once by key). It is stricter on ``v``: only 0 and 1, the values any FISCO signer
produces (2 and 3 would need ``r >= n``, which no honest signer hits).
"""

from __future__ import annotations

from typing import Final

from coincurve import PrivateKey, PublicKey

from verifier.errors import MalformedEvidence, VerificationError
from verifier.hashing import Hasher

SIGNATURE_LENGTH: Final = 65
PUBLIC_KEY_LENGTH: Final = 64
PRIVATE_KEY_LENGTH: Final = 32
CURVE_ORDER: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def recover_public_key(msg_hash: bytes, signature: bytes, *, check: str = "signature") -> bytes:
    """The 64-byte ``X ‖ Y`` key that made ``signature`` over the 32-byte ``msg_hash``."""
    _require_length(msg_hash, 32, "msg_hash", check)
    _require_length(signature, SIGNATURE_LENGTH, "signature", check)
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (0, 1):
        raise VerificationError(f"recovery id v={v}, expected 0 or 1", check=check)
    if not (0 < r < CURVE_ORDER and 0 < s < CURVE_ORDER):
        raise VerificationError("r or s outside 1..n-1", check=check)
    try:
        key = PublicKey.from_signature_and_message(bytes(signature), msg_hash, hasher=None)
    except Exception as exc:  # coincurve raises a bare Exception when recovery fails
        raise VerificationError(f"public key recovery failed: {exc}", check=check) from exc
    return bytes(key.format(compressed=False)[1:])


def verify(public_key: bytes, msg_hash: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``msg_hash`` recovers to ``public_key``, as the node checks."""
    if len(public_key) != PUBLIC_KEY_LENGTH:
        return False
    try:
        return recover_public_key(msg_hash, signature) == public_key
    except VerificationError:
        return False


def sign(private_key: bytes, msg_hash: bytes) -> bytes:
    """A 65-byte ``r ‖ s ‖ v`` signature (low-s, RFC 6979 nonce) over the 32-byte ``msg_hash``."""
    _require_length(msg_hash, 32, "msg_hash", "signature")
    return bytes(_private_key(private_key).sign_recoverable(msg_hash, hasher=None))


def public_key(private_key: bytes) -> bytes:
    """The 64-byte uncompressed ``X ‖ Y`` public key (FISCO's node id form)."""
    return bytes(_private_key(private_key).public_key.format(compressed=False)[1:])


def address(public_key: bytes, hasher: Hasher) -> bytes:
    """The 20-byte account address ``H(X ‖ Y)[12:]``."""
    _require_length(public_key, PUBLIC_KEY_LENGTH, "public_key", "signature")
    return hasher(public_key)[12:]


def _private_key(secret: bytes) -> PrivateKey:
    _require_length(secret, PRIVATE_KEY_LENGTH, "private_key", "signature")
    if not 0 < int.from_bytes(secret, "big") < CURVE_ORDER:
        raise MalformedEvidence("private key outside 1..n-1", field="private_key")
    return PrivateKey(bytes(secret))


def _require_length(value: bytes, length: int, field: str, check: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != length:
        got = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise MalformedEvidence(f"expected {length} bytes, got {got}", check=check, field=field)
