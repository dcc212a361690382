"""SM2 (GB/T 32918) signatures as FISCO BCOS makes them: ``e = SM3(ZA ‖ msg)`` with the
default user ID ``"1234567812345678"``, signatures as 64 raw bytes ``r ‖ s``.

The only module that imports ``tongsuopy`` (the Tongsuo binding), so the backend can be swapped
behind these three functions. Tongsuo's ``ECDSA(SM3())`` on the SM2 curve computes ZA with the
default ID itself; the message passed in is the 32-byte hash FISCO signs (a header hash, a
transaction hash), which SM2 hashes once more together with ZA.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from tongsuopy.crypto import hashes as _hashes
from tongsuopy.crypto.asymciphers import ec as _ec
from tongsuopy.crypto.asymciphers.utils import encode_dss_signature

from verifier.errors import MalformedEvidence

SIGNATURE_LENGTH: Final = 64
PUBLIC_KEY_LENGTH: Final = 64
PRIVATE_KEY_LENGTH: Final = 32
CURVE_ORDER: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
DEFAULT_ID: Final = b"1234567812345678"
"""The user ID in ZA; informational, Tongsuo applies it implicitly."""


def verify(public_key: bytes, msg_hash: bytes, signature: bytes) -> bool:
    """Whether the 64-byte ``r ‖ s`` ``signature`` over ``msg_hash`` is valid for the key."""
    _require_length(public_key, PUBLIC_KEY_LENGTH, "public_key")
    _require_length(signature, SIGNATURE_LENGTH, "signature")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < CURVE_ORDER and 0 < s < CURVE_ORDER):
        return False
    try:
        key = _ec.EllipticCurvePublicKey.from_encoded_point(_ec.SM2(), b"\x04" + bytes(public_key))
        key.verify(encode_dss_signature(r, s), bytes(msg_hash), _ec.ECDSA(_hashes.SM3()))
    except Exception:  # InvalidSignature, or ValueError for a point off the curve
        return False
    return True


def sign(private_key: bytes, msg_hash: bytes) -> bytes:
    """A 64-byte ``r ‖ s`` signature over ``msg_hash`` (random nonce, so not deterministic)."""
    der = _private_key(private_key).sign(bytes(msg_hash), _ec.ECDSA(_hashes.SM3()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def public_key(private_key: bytes) -> bytes:
    """The 64-byte ``X ‖ Y`` public key."""
    numbers = _private_key(private_key).public_key().public_numbers()
    return int(numbers.x).to_bytes(32, "big") + int(numbers.y).to_bytes(32, "big")


def _private_key(secret: bytes) -> _ec.EllipticCurvePrivateKey:
    _require_length(secret, PRIVATE_KEY_LENGTH, "private_key")
    value = int.from_bytes(secret, "big")
    if not 0 < value < CURVE_ORDER - 1:  # SM2 needs d in 1..n-2 ((1 + d) must be invertible)
        raise MalformedEvidence(
            "private key outside 1..n-2", check="signature", field="private_key"
        )
    return _ec.derive_private_key(value, _ec.SM2())


def _require_length(value: bytes, length: int, field: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != length:
        got = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise MalformedEvidence(
            f"expected {length} bytes, got {got}", check="signature", field=field
        )
