"""Sealer keys derived deterministically from a seed, and the node's PBFT signature format."""

from __future__ import annotations

from dataclasses import dataclass

from coincurve import PrivateKey, PublicKey

from verifier.hashing import keccak256

_CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True)
class SealerKey:
    private_key: bytes
    public_key: bytes  # 64 bytes X||Y, the node id

    @property
    def node_id(self) -> str:
        return self.public_key.hex()

    def sign(self, message_hash: bytes) -> bytes:
        """secp256k1 65 bytes r||s||v with v the raw recovery id, as the node signs."""
        return bytes(PrivateKey(self.private_key).sign_recoverable(message_hash, hasher=None))


def derive_private_key(seed: str, label: str) -> bytes:
    counter = 0
    while True:
        digest = keccak256(f"fisco-devnode/{seed}/{label}/{counter}".encode())
        value = int.from_bytes(digest, "big")
        if 0 < value < _CURVE_ORDER:
            return digest
        counter += 1


def sealer_keys(seed: str, count: int) -> tuple[SealerKey, ...]:
    """``count`` keys derived from ``seed``, in the node's consensus order (by node ID)."""
    keys = []
    for index in range(count):
        private = derive_private_key(seed, f"sealer/{index}")
        public = PrivateKey(private).public_key.format(compressed=False)[1:]
        keys.append(SealerKey(private_key=private, public_key=public))
    # ConsensusConfig::setConsensusNodeList sorts by node ID: header sealerList, sealer
    # indexes, getSealerList and consensusNodeList all use this order.
    return tuple(sorted(keys, key=lambda k: k.public_key))


def recover_public_key(message_hash: bytes, signature: bytes) -> bytes:
    """The 64-byte public key behind a 65-byte r||s||v signature (v in {0, 1})."""
    key = PublicKey.from_signature_and_message(signature, message_hash, hasher=None)
    return key.format(compressed=False)[1:]
