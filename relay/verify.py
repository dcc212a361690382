"""Fact verification for the relay: a message or a delivery result against evidence, judged
by this gateway's own trust root for the chain named by the body, never by the bundle or peer.

Order matters (requirement 19): cheap checks first (the chain is configured, the bundle's
family and crypto are the chain's, ids and gateways match, the body hashes to the id), then
the bundle's own hashes, then the trust root (EVM: k-of-n endpoint calls), then the full
verification with the bundle's ``trust`` replaced, and last the proven log against the body.

Verdicts: :class:`EvidenceRejected` (this attempt's evidence is wrong: the verifier's ``check``)
or :class:`NotYetTrusted` (retryable: endpoints disagree, the height is not final, or a FISCO
quorum falls short of the configured sealer set, which needs an operator).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import structlog

from relay.trust import (
    EvidenceRejected,
    EvmTrustConfig,
    FiscoTrustConfig,
    NotYetTrusted,
    TrustConfig,
    TrustRoot,
    TrustStore,
)
from verifier.errors import HeaderNotTrusted, QuorumNotReached, VerificationError
from verifier.events import DecodedEvent
from verifier.evidence import verify_bundle
from verifier.evm.header import parse_header as parse_evm_header
from verifier.fisco.header import parse_header as parse_fisco_header
from verifier.hashing import Hasher, hasher_for, keccak256
from verifier.messages import (
    MESSAGE_DELIVERED_EVENT,
    MESSAGE_SENT_EVENT,
    DeliveryResult,
    Message,
    delivery_from_event,
    message_from_event,
    result_hash,
    seal_from_event,
)
from verifier.messages import message_id as compute_message_id
from verifier.types import VerifiedEvidence

__all__ = [
    "EvidenceRejected",
    "FactKindName",
    "FactVerifier",
    "NotYetTrusted",
    "VerifiedFact",
    "evidence_digest",
]

log = structlog.get_logger(__name__)

FactKindName = Literal["message_sent", "delivery_result"]
VERIFIED_CACHE_SIZE: Final = 1024


@dataclass(frozen=True, slots=True)
class VerifiedFact:
    kind: FactKindName
    chain: str
    """The chain the evidence is from (the message's source, or the result's destination)."""
    id: bytes
    height: int
    block_hash: str
    tx_hash: str
    """As the receipt states it: proven on FISCO (the bound transaction), informational on EVM
    chains (not part of the receipt trie)."""
    evidence_digest: str
    """sha256 hex of the bundle as received, in canonical JSON (:func:`evidence_digest`)."""
    trust: dict[str, Any]
    """The trust root's summary, plus the signature quorum on FISCO: for audit records."""
    relied_trust: dict[str, Any] = field(default_factory=dict)
    """The ``trust`` object the bundle was verified under (this gateway's root, with the event
    on EVM chains): with the bundle, an auditor re-runs ``verify_bundle`` on exactly this."""


def evidence_digest(bundle: Mapping[str, Any]) -> str:
    """sha256 of canonical JSON (sorted keys, no spaces, UTF-8): the same bundle, one digest."""
    try:
        text = json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise EvidenceRejected(f"the bundle is not JSON data: {exc}", check="format") from None
    return hashlib.sha256(text.encode()).hexdigest()


class FactVerifier:
    def __init__(self, trust: TrustStore, chains: Mapping[str, TrustConfig]) -> None:
        self.trust = trust
        self.chains = dict(chains)
        self._verified: OrderedDict[tuple[str, str, str], VerifiedEvidence] = OrderedDict()
        """Bundles that verified: FISCO by (chain, bundle digest, trust digest), EVM by (chain,
        bundle digest, "evm:" + event name); bounded."""

    async def verify_message(
        self, message: Message, message_id: bytes, bundle: Mapping[str, Any]
    ) -> VerifiedFact:
        """``message`` with id ``message_id`` was sent on its source chain's gateway."""
        cfg = self._config(message.src_chain)
        _check_bytes32(message_id, "message id")
        if message.src_gateway != cfg.gateway:
            raise EvidenceRejected(
                f"the message names source gateway 0x{message.src_gateway.hex()}, the "
                f"configured gateway of {cfg.chain} is 0x{cfg.gateway.hex()}",
                check="gateway",
            )
        digest = _check_envelope(cfg, bundle)
        hasher = _hasher(cfg)
        computed = compute_message_id(message, hasher)
        if computed != message_id:
            raise EvidenceRejected(
                f"the body hashes to 0x{computed.hex()}, not to the id 0x{message_id.hex()}",
                check="message_id",
            )
        evidence, root = await self._verify(cfg, bundle, digest, MESSAGE_SENT_EVENT)
        with _verdicts():
            _check_sent(cfg, _event(evidence), message, message_id)
        relied = _relied_trust(cfg, evidence, root, MESSAGE_SENT_EVENT)
        return _fact("message_sent", cfg, message_id, bundle, evidence, root, digest, relied)

    async def verify_result(
        self,
        message: Message,
        message_id: bytes,
        result: DeliveryResult,
        bundle: Mapping[str, Any],
    ) -> VerifiedFact:
        """``result`` was recorded for the stored ``message`` on its destination's gateway.

        The chain is the stored message's ``dst_chain``, never what a peer or result claims.
        """
        cfg = self._config(message.dst_chain)
        _check_bytes32(message_id, "message id")
        if result.id != message_id:
            raise EvidenceRejected(
                f"the result is for 0x{result.id.hex()}, not 0x{message_id.hex()}",
                check="result_id",
            )
        if result.dst_chain != message.dst_chain:
            raise EvidenceRejected(
                f"the result names chain {result.dst_chain!r}, the message went to "
                f"{message.dst_chain!r}",
                check="result_chain",
            )
        if result.dst_gateway != cfg.gateway:
            raise EvidenceRejected(
                f"the result names gateway 0x{result.dst_gateway.hex()}, the configured "
                f"gateway of {cfg.chain} is 0x{cfg.gateway.hex()}",
                check="gateway",
            )
        digest = _check_envelope(cfg, bundle)
        expected_hash = result_hash(result, _hasher(cfg))
        evidence, root = await self._verify(cfg, bundle, digest, MESSAGE_DELIVERED_EVENT)
        with _verdicts():
            _check_result(cfg, _event(evidence), message, result, expected_hash)
        relied = _relied_trust(cfg, evidence, root, MESSAGE_DELIVERED_EVENT)
        return _fact("delivery_result", cfg, message_id, bundle, evidence, root, digest, relied)

    # -- the shared path -------------------------------------------------------------------

    def _config(self, chain: str) -> TrustConfig:
        cfg = self.chains.get(chain)
        if cfg is None:
            raise EvidenceRejected(f"chain {chain!r} is not configured here", check="chain")
        return cfg

    async def _verify(
        self, cfg: TrustConfig, bundle: Mapping[str, Any], digest: str, event: dict[str, Any]
    ) -> tuple[VerifiedEvidence, TrustRoot]:
        """Verify with ``trust`` replaced by this gateway's root; the log must be the gateway's."""
        document = dict(bundle)
        document["chain_id"] = cfg.chain  # informational in the format: ours, not the sender's
        try:
            if isinstance(cfg, EvmTrustConfig):
                evidence, root = await self._verify_evm(cfg, document, digest, event)
            else:
                evidence, root = await self._verify_fisco(cfg, document, digest)
        except QuorumNotReached as exc:
            reason = (
                f"{exc.reason}; OPERATOR ALARM: the configured sealer set of {cfg.chain} may "
                "be out of date (a sealer was added or removed)"
            )
            log.error("trust_quorum_short", chain=cfg.chain, have=exc.have, need=exc.need)
            raise NotYetTrusted(reason, chain=cfg.chain) from None
        except VerificationError as exc:
            raise EvidenceRejected(exc.reason, check=exc.check) from None
        if evidence.log is None or evidence.event is None:
            raise EvidenceRejected("the bundle names no log (log_index)", check="log_index")
        if evidence.log.address != cfg.gateway:
            raise EvidenceRejected(
                f"the proven log is from 0x{evidence.log.address.hex()}, not the configured "
                f"gateway 0x{cfg.gateway.hex()} of {cfg.chain}",
                check="gateway",
            )
        return evidence, root

    async def _verify_evm(
        self, cfg: EvmTrustConfig, document: dict[str, Any], digest: str, event: dict[str, Any]
    ) -> tuple[VerifiedEvidence, TrustRoot]:
        # The bundle's own hashes first (requirement 16): a bundle that fails on its own never
        # costs endpoint calls. Its header hash stands in as the trust until the endpoints speak.
        # An EVM root is a block hash, so verifying under the root's trust is this run plus
        # the comparison below (the verifier's own header_trust check, done once).
        header = parse_evm_header(_object(document.get("block"), "block"))
        own_hash = "0x" + header.hash.hex()
        document["trust"] = {"block_hash": own_hash, "event": event}
        # What verify_bundle sees is a function of the bundle, the chain and the event, so a
        # bundle verified before (a gateway serving both ends sees each one twice) is not
        # verified again; the endpoints' agreement below is checked every time.
        key = (cfg.chain, digest, "evm:" + str(event.get("name")))
        evidence = self._verified.get(key)
        if evidence is None:
            evidence = await asyncio.to_thread(verify_bundle, document)
            self._remember(key, evidence)
        else:
            self._verified.move_to_end(key)
        root = await self.trust.root_for(
            cfg.chain, height=evidence.block_number, block_hash=own_hash
        )
        trusted = str(root.trust.get("block_hash", "")).lower()
        if trusted != own_hash:
            raise HeaderNotTrusted(
                f"block {evidence.block_number}: the hash recomputed from the header is not "
                "the one this gateway's endpoints agree on",
                expected=trusted,
                computed=own_hash,
            )
        return evidence, root

    async def _verify_fisco(
        self, cfg: FiscoTrustConfig, document: dict[str, Any], digest: str
    ) -> tuple[VerifiedEvidence, TrustRoot]:
        header = parse_fisco_header(_object(document.get("block"), "block"), _hasher(cfg))
        root = await self.trust.root_for(
            cfg.chain, height=header.number, block_hash="0x" + header.hash.hex()
        )
        trust = copy.deepcopy(dict(root.trust))
        # The facts of one seal share its bundle: verify it once per trust root.
        key = (cfg.chain, digest, evidence_digest(trust))
        cached = self._verified.get(key)
        if cached is not None:
            self._verified.move_to_end(key)
            return cached, root
        document["trust"] = trust
        # SM2/secp256k1 quorum checks are CPU heavy: off the event loop.
        evidence = await asyncio.to_thread(verify_bundle, document)
        self._remember(key, evidence)
        return evidence, root

    def _remember(self, key: tuple[str, str, str], evidence: VerifiedEvidence) -> None:
        self._verified[key] = evidence
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)


def _check_sent(cfg: TrustConfig, event: DecodedEvent, message: Message, message_id: bytes) -> None:
    """The proven log states this message: FISCO, its seal lists the id (the body hashes to
    it, checked before); EVM, its MessageSent equals the body field by field."""
    if isinstance(cfg, FiscoTrustConfig):
        if message_id not in seal_from_event(event).sent_ids:
            raise EvidenceRejected(
                f"the proven seal does not list message 0x{message_id.hex()}",
                check="sealed_entry",
            )
        return
    claimed, proven = message_from_event(event, cfg.gateway)
    if claimed != message_id or proven != message:
        raise EvidenceRejected(
            f"the proven MessageSent (id 0x{claimed.hex()}) is not this message",
            check="event_body",
        )


def _check_result(
    cfg: TrustConfig,
    event: DecodedEvent,
    message: Message,
    result: DeliveryResult,
    expected_hash: bytes,
) -> None:
    """The proven log states this result: FISCO, its seal lists the result hash; EVM, its
    MessageDelivered has this id, source chain, status, result and result hash."""
    if isinstance(cfg, FiscoTrustConfig):
        if expected_hash not in seal_from_event(event).result_hashes:
            raise EvidenceRejected(
                f"the proven seal does not list result hash 0x{expected_hash.hex()}",
                check="sealed_entry",
            )
        return
    claimed, src_chain, proven = delivery_from_event(event, cfg.chain, cfg.gateway)
    if (claimed, src_chain, proven) != (expected_hash, message.src_chain, result):
        raise EvidenceRejected(
            f"the proven MessageDelivered (id 0x{proven.id.hex()}, result hash "
            f"0x{claimed.hex()}) is not this result",
            check="event_body",
        )


@contextmanager
def _verdicts() -> Iterator[None]:
    """A verifier error met while reading a proven event is a verdict on this evidence."""
    try:
        yield
    except VerificationError as exc:
        raise EvidenceRejected(exc.reason, check=exc.check) from None


def _hasher(cfg: TrustConfig) -> Hasher:
    if isinstance(cfg, FiscoTrustConfig):
        return hasher_for(cfg.crypto.hash_scheme)
    return keccak256


def _check_bytes32(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise EvidenceRejected(f"the {what} is not 32 bytes", check="format")


def check_family(cfg: TrustConfig, bundle: Mapping[str, Any]) -> None:
    """The bundle's family and crypto are the configured chain's (requirement 2): whatever the
    bundle claims, it is verified as the chain this gateway has configured, or not at all."""
    family, crypto = bundle.get("family"), bundle.get("crypto")
    if family != cfg.family.value:
        raise EvidenceRejected(
            f"the bundle's family is {family!r}, {cfg.chain} is {cfg.family.value!r}",
            check="family",
        )
    if crypto != cfg.crypto.value:
        raise EvidenceRejected(
            f"the bundle's crypto is {crypto!r}, {cfg.chain} uses {cfg.crypto.value!r}",
            check="crypto",
        )


def _check_envelope(cfg: TrustConfig, bundle: object) -> str:
    """:func:`check_family`, and the bundle names a log; its digest."""
    if not isinstance(bundle, Mapping):
        raise EvidenceRejected("an evidence bundle is a JSON object", check="bundle_format")
    check_family(cfg, bundle)
    log_index = bundle.get("log_index")
    if not isinstance(log_index, int) or isinstance(log_index, bool):
        raise EvidenceRejected("the bundle names no log (log_index)", check="log_index")
    return evidence_digest(bundle)


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise EvidenceRejected(f"{what} is not a JSON object", check="bundle_format")
    return value


def _event(evidence: VerifiedEvidence) -> DecodedEvent:
    assert evidence.event is not None  # _verify refuses bundles without the event
    return evidence.event


def _fact(  # noqa: PLR0917 - assembles the result of one verification
    kind: FactKindName,
    cfg: TrustConfig,
    fact_id: bytes,
    bundle: Mapping[str, Any],
    evidence: VerifiedEvidence,
    root: TrustRoot,
    digest: str,
    relied: dict[str, Any],
) -> VerifiedFact:
    summary: dict[str, Any] = dict(root.summary)
    if evidence.quorum is not None:
        q = evidence.quorum
        summary["quorum"] = {
            "have": q.have,
            "need": q.need,
            "total": q.total,
            "signers": list(q.signers),
            "skipped": list(q.skipped),
        }
        if q.skipped:
            log.warning(
                "trust_unknown_sealers_signed",
                chain=cfg.chain,
                height=evidence.block_number,
                skipped=list(q.skipped),
            )
    receipt = bundle.get("receipt")
    tx_hash = receipt.get("transactionHash") if isinstance(receipt, Mapping) else None
    return VerifiedFact(
        kind=kind,
        chain=cfg.chain,
        id=fact_id,
        height=evidence.block_number,
        block_hash="0x" + evidence.block_hash.hex(),
        tx_hash=str(tx_hash or ""),
        evidence_digest=digest,
        trust=summary,
        relied_trust=relied,
    )


def _relied_trust(
    cfg: TrustConfig, evidence: VerifiedEvidence, root: TrustRoot, event: Mapping[str, Any]
) -> dict[str, Any]:
    """What ``verify_bundle`` ran under: on EVM chains the header's own hash, which the
    endpoints' agreed hash equalled, and the event; on FISCO the root's trust object."""
    if isinstance(cfg, EvmTrustConfig):
        return {"block_hash": "0x" + evidence.block_hash.hex(), "event": copy.deepcopy(event)}
    return copy.deepcopy(dict(root.trust))
