"""Evidence bundles for ``bench.audit`` that prove the gateway's own events, one per fact.

``verify_export`` checks that each re-verified bundle proves the record it is attached to
(``relay.audit_check.unbound``): the gateway's ``MessageSent`` / ``MessageDelivered`` log with
the record's message id, in the block at the record's height and the transaction it names,
emitted by the gateway its trust summary names. Real chain data cannot do that (mainnet blocks
carry no gateway's events, and the real FISCO BCOS blocks carry no gateway's ``Sealed`` log), so
each message gets two synthetic one-receipt London blocks built by the audit tests' helpers
(``tests/unit/relay/test_audit.py``: ``sent_bundle``, ``delivered_bundle``, ``_summary``): real
receipt tries and proofs checked against the header's ``receiptsRoot``, real block hashes, and
the gateway's logs ABI-encoded as the contract emits them. Each is relied on under
``{"block_hash", "event"}`` (the bundle's own trust), the shape ``relay.verify._relied_trust``
records for an EVM verification, with ``relay.trust``'s EVM summary naming the emitter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from relay.audit import Reliance, evidence_digest
from tests.unit.relay.test_audit import (
    DST_GATEWAY,
    SRC_GATEWAY,
    _summary,
    delivered_bundle,
    sent_bundle,
)
from verifier.hashing import keccak256
from verifier.messages import Message, message_id

__all__ = [
    "DST_CHAIN",
    "DST_GATEWAY",
    "RESULT_HEIGHT",
    "SENT_HEIGHT",
    "SRC_CHAIN",
    "SRC_GATEWAY",
    "Evidence",
    "message_evidence",
]

SRC_CHAIN: Final = "chain-a"
DST_CHAIN: Final = "chain-b"
SENT_HEIGHT: Final = 1_000_000
"""Message ``n``'s ``MessageSent`` is in block ``SENT_HEIGHT + n`` of the source chain."""
RESULT_HEIGHT: Final = 2_000_000
"""Its ``MessageDelivered`` is in block ``RESULT_HEIGHT + n`` of the destination chain."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """A bundle, as an endpoint served it, what the gateway recorded relying on, and the block
    and transaction it proves (which the record states)."""

    bundle: dict[str, Any]
    relied: Reliance
    height: int
    tx_hash: str


def _evidence(bundle: dict[str, Any], gateway: bytes, height: int, tx: str) -> Evidence:
    relied = Reliance(evidence_digest(bundle), bundle["trust"], _summary(gateway))
    return Evidence(bundle, relied, height, tx)


def message_evidence(n: int, message: Message) -> tuple[Evidence, Evidence]:
    """The bundles of message ``n``'s ``MessageSent`` (``SRC_GATEWAY``) and of its successful
    ``MessageDelivered`` (``DST_GATEWAY``, result ``b"ok"``), in distinct blocks and
    transactions."""
    if message.src_gateway != SRC_GATEWAY:
        raise ValueError("the message's source gateway is not the one the bundle's log names")
    id = message_id(message, keccak256)
    sent_tx = "0x" + keccak256(b"sent" + id).hex()
    result_tx = "0x" + keccak256(b"delivered" + id).hex()
    sent = sent_bundle(message, number=SENT_HEIGHT + n, tx=sent_tx)
    result = delivered_bundle(message, number=RESULT_HEIGHT + n, tx=result_tx)
    return (
        _evidence(sent, SRC_GATEWAY, SENT_HEIGHT + n, sent_tx),
        _evidence(result, DST_GATEWAY, RESULT_HEIGHT + n, result_tx),
    )
