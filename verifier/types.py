"""Domain values the verifier returns. Frozen, hashable, free of JSON and of chain RPC quirks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from verifier.hashing import CryptoSuite

if TYPE_CHECKING:
    from verifier.events import DecodedEvent


class Family(StrEnum):
    """Chain families the gateway understands."""

    EVM = "evm"
    FISCO_BCOS_3 = "fisco-bcos-3"


@dataclass(frozen=True, slots=True)
class DecodedLog:
    """One event log taken from verified receipt content."""

    address: bytes
    topics: tuple[bytes, ...]
    data: bytes

    def as_json(self) -> dict[str, object]:
        return {
            "address": "0x" + self.address.hex(),
            "topics": ["0x" + t.hex() for t in self.topics],
            "data": "0x" + self.data.hex(),
        }


@dataclass(frozen=True, slots=True)
class SignatureQuorum:
    """How a FISCO header's signature list met the PBFT quorum of the trusted sealer set."""

    have: int
    need: int
    total: int
    signers: tuple[int, ...]
    skipped: tuple[int, ...] = ()
    """Valid signers that the header lists but the trust root does not hold (not counted)."""


@dataclass(frozen=True, slots=True)
class VerifiedEvidence:
    """Evidence that held: the receipt is committed in a block the receiving side trusts."""

    family: Family
    chain_id: str
    crypto: CryptoSuite
    block_number: int
    block_hash: bytes
    receipt_hash: bytes
    log_index: int | None
    log: DecodedLog | None
    quorum: SignatureQuorum | None
    receipt_status: int | None = None
    """FISCO: the receipt's status (0 is success); Ethereum: 1 or 0, None before Byzantium."""
    event: DecodedEvent | None = None
    """The log decoded strictly against the trusted event definition, when one was given."""
