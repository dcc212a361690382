"""Synthetic, self-signed FISCO 3.x headers for quorum tests (own keys, both crypto suites)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from verifier.fisco.header import compute_header_hash
from verifier.hashing import CryptoSuite, hasher_for
from verifier.signatures import secp256k1, sm2


def private_keys(suite: CryptoSuite, count: int = 4) -> list[bytes]:
    """Deterministic, valid private keys for ``suite``."""
    return [hashlib.sha256(f"{suite}-sealer-{i}".encode()).digest() for i in range(count)]


def public_key(suite: CryptoSuite, secret: bytes) -> bytes:
    """The 64-byte node id for ``secret``."""
    if suite is CryptoSuite.SM3_SM2:
        return sm2.public_key(secret)
    return secp256k1.public_key(secret)


def sign(suite: CryptoSuite, secret: bytes, digest: bytes) -> bytes:
    """A consensus signature: 64-byte SM2 r‖s or 65-byte secp256k1 r‖s‖v."""
    if suite is CryptoSuite.SM3_SM2:
        return sm2.sign(secret, digest)
    return secp256k1.sign(secret, digest)


def build_header(
    suite: CryptoSuite,
    secrets: Sequence[bytes],
    signers: Sequence[int],
    *,
    weights: Sequence[int] | None = None,
    number: int = 5,
) -> dict[str, Any]:
    """A getBlockByNumber-shaped header JSON signed by the sealers at ``signers``."""
    keys = [public_key(suite, s) for s in secrets]
    block: dict[str, Any] = {
        "version": 0x03030000,
        "parentInfo": [{"blockNumber": number - 1, "blockHash": "0x" + "11" * 32}],
        "txsRoot": "0x" + "22" * 32,
        "receiptsRoot": "0x" + "33" * 32,
        "stateRoot": "0x" + "44" * 32,
        "number": number,
        "gasUsed": "21000",
        "timestamp": 1_700_000_000_000 + number,
        "sealer": 0,
        "sealerList": ["0x" + k.hex() for k in keys],
        "extraData": "0x",
        "consensusWeights": list(weights) if weights is not None else [1] * len(keys),
    }
    digest = compute_header_hash(block, hasher_for(suite.hash_scheme))
    block["hash"] = "0x" + digest.hex()
    block["signatureList"] = [
        {"sealerIndex": i, "signature": "0x" + sign(suite, secrets[i], digest).hex()}
        for i in signers
    ]
    return block


def trusted_set(block: dict[str, Any], weights: Sequence[int] | None = None) -> dict[bytes, int]:
    """node id -> weight for the block's sealerList (weights default to the header's)."""
    keys = [bytes.fromhex(k[2:]) for k in block["sealerList"]]
    chosen = weights if weights is not None else block["consensusWeights"]
    return dict(zip(keys, chosen, strict=True))
