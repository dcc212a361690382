"""FISCO BCOS 3.x PBFT signature lists and the weighted quorum.

Each entry of a header's ``signatureList`` is ``(sealerIndex, signature)`` over the header hash
(``PBFTEngine`` checkpoint). ``sealerIndex`` points into the header's ``sealerList``. The header
is final when the weight of distinct valid signers reaches
``total - (total - 1) // 3`` (``PBFTConfig::updateQuorum``; 4 sealers of weight 1 need 3).

The header's own ``sealerList`` and ``consensusWeights`` are self-declared, so this check takes
keys and weights from the TRUSTED set only: a key the caller does not trust never counts, and
``total`` is the trusted set's weight, not the header's. A valid signature from a sealer that
the header lists but the caller does not trust (a sealer added since the trust root was set)
is skipped, not fatal, so honest evidence survives a sealer-set change as long as the trusted
sealers still reach the quorum; a shortfall then says how much trusted weight signed and how
much is needed. Every invalid signature still fails the whole list (no "enough good ones"
leniency): an evidence bundle that carries a forged signature is itself suspect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from verifier.errors import (
    DuplicateSigner,
    InvalidSignature,
    MalformedEvidence,
    QuorumNotReached,
    UnknownSigner,
    VerificationError,
)
from verifier.hashing import CryptoSuite
from verifier.limits import MAX_SEALERS, MAX_SIGNATURES_PER_HEADER, check_count
from verifier.signatures import secp256k1, sm2
from verifier.types import SignatureQuorum

QuorumResult = SignatureQuorum
"""``(have, need, total, signers)``: trusted weight signed, weight needed, trusted total, and
the ``sealerIndex`` of every counted signer in list order."""

_SIGNATURE_LENGTH = {
    CryptoSuite.KECCAK256_SECP256K1: secp256k1.SIGNATURE_LENGTH,
    CryptoSuite.SM3_SM2: sm2.SIGNATURE_LENGTH,
}


def quorum_threshold(total_weight: int) -> int:
    """The PBFT quorum for ``total_weight``: ``total - (total - 1) // 3``."""
    if isinstance(total_weight, bool) or not isinstance(total_weight, int) or total_weight < 1:
        raise MalformedEvidence(
            f"total weight must be a positive integer, got {total_weight!r}", check="quorum"
        )
    return total_weight - (total_weight - 1) // 3


def verify_signature_list(
    header_hash: bytes,
    sealer_list: Sequence[bytes],
    signatures: Sequence[tuple[int, bytes]],
    trusted: Mapping[bytes, int],
    suite: CryptoSuite,
) -> QuorumResult:
    """Check every signature and the weighted quorum; return who signed with what weight.

    Raises ``UnknownSigner`` (index outside ``sealer_list``), ``DuplicateSigner``,
    ``InvalidSignature`` (each naming the entry's position in ``signatures``) and
    ``QuorumNotReached``. A valid signature by a listed key outside ``trusted`` is skipped.
    """
    if not isinstance(header_hash, bytes) or len(header_hash) != 32:
        raise MalformedEvidence("not a 32-byte hash", check="signature", field="header_hash")
    check_count(
        len(signatures), MAX_SIGNATURES_PER_HEADER, field="signatureList", what="signatures"
    )
    check_count(len(sealer_list), MAX_SEALERS, field="sealerList", what="sealers")
    check_count(len(trusted), MAX_SEALERS, field="trusted", what="trusted sealers")
    total = _trusted_total(trusted)
    need = quorum_threshold(total)
    seen_keys: set[bytes] = set()
    signers: list[int] = []
    skipped: list[int] = []
    have = 0
    for position, entry in enumerate(signatures):
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            raise MalformedEvidence(
                "expected a (sealerIndex, signature) pair", field=f"signatureList[{position}]"
            )
        sealer_index, signature = entry
        key = _signer_key(position, sealer_index, sealer_list)
        if key in seen_keys:
            raise DuplicateSigner(
                f"sealer {sealer_index} ({key.hex()[:16]}…) has already signed", index=position
            )
        _verify_one(position, key, header_hash, signature, suite)
        seen_keys.add(key)
        if key in trusted:
            signers.append(sealer_index)
            have += trusted[key]
        else:
            skipped.append(sealer_index)
    if have < need:
        raise QuorumNotReached(have=have, need=need, total=total)
    return QuorumResult(
        have=have, need=need, total=total, signers=tuple(signers), skipped=tuple(skipped)
    )


def _signer_key(position: int, sealer_index: int, sealer_list: Sequence[bytes]) -> bytes:
    if isinstance(sealer_index, bool) or not isinstance(sealer_index, int):
        raise MalformedEvidence(
            f"sealerIndex {sealer_index!r} is not an integer",
            check="signer",
            field=f"signatureList[{position}].sealerIndex",
        )
    if not 0 <= sealer_index < len(sealer_list):
        raise UnknownSigner(
            f"sealerIndex {sealer_index} is outside sealerList ({len(sealer_list)} keys)",
            index=position,
        )
    return bytes(sealer_list[sealer_index])


def _verify_one(
    position: int, key: bytes, header_hash: bytes, signature: bytes, suite: CryptoSuite
) -> None:
    want = _SIGNATURE_LENGTH[suite]
    if not isinstance(signature, bytes | bytearray) or len(signature) != want:
        got = len(signature) if isinstance(signature, bytes | bytearray) else "no"
        raise InvalidSignature(f"{suite} signature must be {want} bytes, got {got}", index=position)
    if suite is CryptoSuite.SM3_SM2:
        valid = sm2.verify(key, header_hash, bytes(signature))
    else:
        try:
            valid = secp256k1.recover_public_key(header_hash, bytes(signature)) == key
        except VerificationError as exc:
            raise InvalidSignature(exc.reason, index=position) from exc
    if not valid:
        raise InvalidSignature(
            f"signature does not verify against sealer key {key.hex()[:16]}…", index=position
        )


def _trusted_total(trusted: Mapping[bytes, int]) -> int:
    total = 0
    for key, weight in trusted.items():
        if not isinstance(key, bytes) or len(key) != 64:
            raise MalformedEvidence(
                "trusted keys must be 64 bytes", check="quorum", field="trusted"
            )
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise MalformedEvidence(
                f"weight of {key.hex()[:16]}… must be a non-negative integer",
                check="quorum",
                field="trusted",
            )
        total += weight
    if total < 1:
        raise MalformedEvidence("trusted sealer set has no weight", check="quorum", field="trusted")
    return total
