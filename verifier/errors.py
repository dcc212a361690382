"""The root of the gateway's error hierarchy and the verifier's typed failures.

Every failure names the check that failed (``check``), and where it applies the position
(``index``/``level``) and the expected versus computed values, so that the reason can go
into the audit log verbatim. Retry decisions are made elsewhere, from ``retryable``.
"""

from __future__ import annotations

from typing import ClassVar


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    retryable: ClassVar[bool] = False


class VerificationError(GatewayError):
    """Evidence did not verify. Never retryable: the same bytes fail the same way."""

    def __init__(self, message: str, *, check: str) -> None:
        super().__init__(message)
        self.check = check
        self.reason = message


class MalformedEvidence(VerificationError):
    """Input that is not well-formed: a missing field, bad hex, a wrong length, bad RLP."""

    def __init__(self, message: str, *, check: str = "format", field: str | None = None) -> None:
        text = f"{field}: {message}" if field else message
        super().__init__(text, check=check)
        self.field = field


class MalformedProof(MalformedEvidence):
    """A proof that cannot be walked: bad node encoding, too many nodes, missing node."""

    def __init__(self, message: str, *, check: str, index: int | None = None) -> None:
        where = f" (proof item {index})" if index is not None else ""
        super().__init__(f"{message}{where}", check=check)
        self.index = index


class ProofMismatch(VerificationError):
    """A recomputed hash or value differs from the one the evidence commits to."""

    def __init__(
        self,
        message: str,
        *,
        check: str,
        expected: str,
        computed: str,
        index: int | None = None,
    ) -> None:
        where = f" at proof item {index}" if index is not None else ""
        super().__init__(f"{message}{where}: expected {expected}, computed {computed}", check=check)
        self.expected = expected
        self.computed = computed
        self.index = index


class HeaderNotTrusted(VerificationError):
    """The recomputed block hash is not one the verifier trusts."""

    def __init__(self, message: str, *, expected: str, computed: str) -> None:
        super().__init__(
            f"{message}: trusted {expected}, computed {computed}", check="header_trust"
        )
        self.expected = expected
        self.computed = computed


class InvalidSignature(VerificationError):
    """A signature does not verify against the key it claims to come from."""

    def __init__(self, message: str, *, index: int) -> None:
        super().__init__(f"signatureList[{index}]: {message}", check="signature")
        self.index = index


class UnknownSigner(VerificationError):
    """A signature names or recovers to a key outside the trusted sealer set."""

    def __init__(self, message: str, *, index: int) -> None:
        super().__init__(f"signatureList[{index}]: {message}", check="signer")
        self.index = index


class DuplicateSigner(VerificationError):
    """Two signatures come from the same sealer; each sealer counts once."""

    def __init__(self, message: str, *, index: int) -> None:
        super().__init__(f"signatureList[{index}]: {message}", check="signer")
        self.index = index


class QuorumNotReached(VerificationError):
    """The trusted weight of valid, distinct signers is below the PBFT quorum."""

    def __init__(self, *, have: int, need: int, total: int) -> None:
        super().__init__(
            f"trusted signature weight {have} of {total} is below the quorum: have {have}, "
            f"need {need}",
            check="quorum",
        )
        self.have = have
        self.need = need
        self.total = total
