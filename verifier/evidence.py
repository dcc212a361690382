"""Evidence bundles (``interop-evidence/1``): parse one and verify everything it claims.

The format is specified in ``docs/evidence-format.md``. A bundle carries a block header, one
receipt, the receipt's inclusion proof and the trust root the receiving side holds. Checking
it is all or nothing: :func:`verify_bundle` returns :class:`VerifiedEvidence` or raises the
:class:`~verifier.errors.VerificationError` of the first check that failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from verifier.encoding import (
    parse_hex,
    parse_int,
    parse_list,
    parse_object,
    parse_quantity,
    parse_str,
    require,
)
from verifier.errors import (
    HeaderNotTrusted,
    MalformedEvidence,
    ProofMismatch,
    VerificationError,
)
from verifier.evm.header import parse_header as parse_evm_header
from verifier.evm.receipt import EvmReceipt, verify_receipt_proof
from verifier.fisco.header import FiscoHeader
from verifier.fisco.header import parse_header as parse_fisco_header
from verifier.fisco.receipt import compute_receipt_hash, decode_log_entries
from verifier.fisco.transaction import compute_transaction_hash, nonce_encoding_for_version
from verifier.hashing import CryptoSuite, Hasher, hasher_for, keccak256
from verifier.merkle.fisco import verify_merkle_proof
from verifier.signatures.quorum import verify_signature_list
from verifier.types import DecodedLog, Family, VerifiedEvidence

FORMAT_V1: Final = "interop-evidence/1"
MAX_PROOF_ITEMS: Final = 256
MAX_SEALERS: Final = 1024


class BundleFormatError(MalformedEvidence):
    """The document is not an evidence bundle of a version this verifier knows."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, check="bundle_format", field=field)


@dataclass(frozen=True, slots=True)
class EvidenceBundle:
    """The envelope of a bundle, checked for shape; chain data stays as the RPC gave it."""

    family: Family
    chain_id: str
    crypto: CryptoSuite
    block: Mapping[str, Any]
    receipt: Mapping[str, Any]
    proof: tuple[str, ...]
    log_index: int | None
    trust: Mapping[str, Any]
    transaction: Mapping[str, Any] | None


def parse_bundle(document: object) -> EvidenceBundle:
    """Check the envelope: format version, family, crypto suite and field types."""
    if not isinstance(document, Mapping):
        raise BundleFormatError("an evidence bundle is a JSON object")
    fmt = document.get("format")
    if fmt != FORMAT_V1:
        raise BundleFormatError(f"unknown format {fmt!r}; expected {FORMAT_V1!r}", field="format")
    family_text = document.get("family")
    if not isinstance(family_text, str) or family_text not in {f.value for f in Family}:
        known = ", ".join(f.value for f in Family)
        raise BundleFormatError(
            f"unknown family {family_text!r}; expected one of {known}", field="family"
        )
    family = Family(family_text)
    crypto_text = parse_str(require(document, "crypto", ""), "crypto")
    if crypto_text not in {c.value for c in CryptoSuite}:
        raise MalformedEvidence(f"unknown crypto suite {crypto_text!r}", field="crypto")
    crypto = CryptoSuite(crypto_text)
    if family is Family.EVM and crypto is not CryptoSuite.KECCAK256_SECP256K1:
        raise MalformedEvidence("evm chains use keccak256-secp256k1", field="crypto")
    chain_id = parse_str(require(document, "chain_id", ""), "chain_id")
    if not chain_id:
        raise MalformedEvidence("must not be empty", field="chain_id")
    proof = parse_list(require(document, "proof", ""), "proof")
    if len(proof) > MAX_PROOF_ITEMS:
        raise MalformedEvidence(f"more than {MAX_PROOF_ITEMS} items", field="proof")
    for i, item in enumerate(proof):
        parse_str(item, f"proof[{i}]")
    log_index = document.get("log_index")
    if log_index is not None:
        log_index = parse_int(log_index, "log_index")
    return EvidenceBundle(
        family=family,
        chain_id=chain_id,
        crypto=crypto,
        block=parse_object(require(document, "block", ""), "block"),
        receipt=parse_object(require(document, "receipt", ""), "receipt"),
        proof=tuple(proof),
        log_index=log_index,
        trust=parse_object(require(document, "trust", ""), "trust"),
        transaction=_optional_object(document, "transaction"),
    )


def _optional_object(document: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = document.get(key)
    return None if value is None else parse_object(value, key)


def verify_bundle(document: object) -> VerifiedEvidence:
    """Parse and verify a bundle; raises the first failed check's VerificationError."""
    bundle = parse_bundle(document)
    if bundle.family is Family.EVM:
        return _verify_evm(bundle)
    return _verify_fisco(bundle)


def _verify_evm(bundle: EvidenceBundle) -> VerifiedEvidence:
    header = parse_evm_header(bundle.block)
    trusted = parse_hex(require(bundle.trust, "block_hash", "trust"), "trust.block_hash", length=32)
    if header.hash != trusted:
        raise HeaderNotTrusted(
            "block hash recomputed from the header is not the trusted hash",
            expected=_hex(trusted),
            computed=_hex(header.hash),
        )
    _check_claim(bundle.block, "hash", header.hash, check="block_hash", field="block.hash")
    _check_claim(
        bundle.receipt, "blockHash", header.hash, check="receipt_block", field="receipt.blockHash"
    )
    _check_number_claim(bundle.receipt.get("blockNumber"), header.number, quantity=True)
    receipt: EvmReceipt = verify_receipt_proof(header.receipts_root, bundle.receipt, bundle.proof)
    return VerifiedEvidence(
        family=bundle.family,
        chain_id=bundle.chain_id,
        crypto=bundle.crypto,
        block_number=header.number,
        block_hash=header.hash,
        receipt_hash=keccak256(receipt.encoded),
        log_index=bundle.log_index,
        log=_select_log(receipt.logs, bundle.log_index),
        quorum=None,
    )


def _verify_fisco(bundle: EvidenceBundle) -> VerifiedEvidence:
    hasher = hasher_for(bundle.crypto.hash_scheme)
    header = parse_fisco_header(bundle.block, hasher)
    _check_claim(bundle.block, "hash", header.hash, check="header_hash", field="block.hash")
    trusted = _parse_sealers(bundle.trust)
    quorum = verify_signature_list(
        header.hash, header.sealer_list, header.signatures, trusted, bundle.crypto
    )
    _check_number_claim(bundle.receipt.get("blockNumber"), header.number, quantity=False)
    receipt_hash = compute_receipt_hash(bundle.receipt, hasher)
    claimed = bundle.receipt.get("hash")
    if claimed not in (None, "0x"):
        _check_claim(
            bundle.receipt, "hash", receipt_hash, check="receipt_hash", field="receipt.hash"
        )
    position = verify_merkle_proof(
        bundle.proof, receipt_hash, header.receipts_root, hasher, check="receipt_proof"
    )
    logs = decode_log_entries(bundle.receipt)
    log = _select_log(logs, bundle.log_index)
    if log is not None:
        emitter = _verify_fisco_transaction(bundle, header, hasher, position, receipt_hash)
        _check_fisco_log_layout(bundle.receipt, logs, emitter)
    return VerifiedEvidence(
        family=bundle.family,
        chain_id=bundle.chain_id,
        crypto=bundle.crypto,
        block_number=header.number,
        block_hash=header.hash,
        receipt_hash=receipt_hash,
        log_index=bundle.log_index,
        log=log,
        quorum=quorum,
    )


def _verify_fisco_transaction(
    bundle: EvidenceBundle, header: FiscoHeader, hasher: Hasher, position: int, receipt_hash: bytes
) -> bytes:
    """Tie the receipt to its transaction; return the address the transaction called.

    A FISCO receipt hash concatenates ``output`` and the logs without lengths, so the same
    hash admits other splits of those bytes into output, log addresses, topics and data. A
    log is only as good as its layout is forced: the transaction (proven under ``txsRoot`` at
    the receipt's position) names the contract called, and that contract must be the emitter.
    """
    if bundle.transaction is None:
        raise MalformedEvidence(
            "a FISCO bundle that names a log_index must carry the transaction "
            "(getTransaction with requireProof) to bind the log to its emitter",
            check="transaction",
            field="transaction",
        )
    tx = bundle.transaction
    encoding = nonce_encoding_for_version(header.version)
    tx_hash = compute_transaction_hash(tx, hasher, nonce_encoding=encoding)
    _check_claim(tx, "hash", tx_hash, check="transaction_hash", field="transaction.hash")
    _check_claim(
        bundle.receipt,
        "transactionHash",
        tx_hash,
        check="receipt_transaction",
        field="receipt.transactionHash",
    )
    proof = parse_list(require(tx, "txProof", "transaction"), "transaction.txProof")
    tx_position = verify_merkle_proof(
        proof, tx_hash, header.txs_root, hasher, check="transaction_proof"
    )
    if tx_position != position:
        raise ProofMismatch(
            "the receipt and the transaction are at different positions in the block "
            f"(receipt hash 0x{receipt_hash.hex()})",
            check="receipt_transaction",
            expected=str(tx_position),
            computed=str(position),
        )
    to = parse_str(require(tx, "to", "transaction"), "transaction.to")
    if not to:
        raise MalformedEvidence(
            "a contract deployment carries no cross-chain log",
            check="log_binding",
            field="transaction.to",
        )
    return parse_hex(to, "transaction.to", length=20, prefix="optional")


def _check_fisco_log_layout(
    receipt: Mapping[str, Any], logs: tuple[DecodedLog, ...], emitter: bytes
) -> None:
    """Refuse a log whose bytes could have been split differently under the same hash.

    With no output, a version-0 receipt (no effectiveGasPrice) and exactly one log whose
    address is the called contract, every split of the hashed bytes gives the same topics and
    data bytes; only the topic count stays for the caller to check against the event's ABI.
    """
    problems = []
    if parse_hex(require(receipt, "output", "receipt"), "receipt.output") != b"":
        problems.append("the receipt has output")
    if parse_int(require(receipt, "version", "receipt"), "receipt.version", bits=32) != 0:
        problems.append("the receipt version is not 0")
    if len(logs) != 1:
        problems.append(f"the receipt has {len(logs)} logs, not 1")
    elif logs[0].address != emitter:
        problems.append(
            f"the log is from 0x{logs[0].address.hex()}, not the called contract 0x{emitter.hex()}"
        )
    if problems:
        raise VerificationError(
            "the log's layout is not forced by the receipt hash: " + "; ".join(problems),
            check="log_binding",
        )


def _parse_sealers(trust: Mapping[str, Any]) -> dict[bytes, int]:
    sealers = parse_list(require(trust, "sealers", "trust"), "trust.sealers")
    if not sealers:
        raise MalformedEvidence("the trusted sealer set is empty", field="trust.sealers")
    if len(sealers) > MAX_SEALERS:
        raise MalformedEvidence(f"more than {MAX_SEALERS} sealers", field="trust.sealers")
    trusted: dict[bytes, int] = {}
    for i, entry in enumerate(sealers):
        path = f"trust.sealers[{i}]"
        obj = parse_object(entry, path)
        node_id = parse_hex(
            require(obj, "node_id", path), f"{path}.node_id", length=64, prefix="optional"
        )
        weight = parse_int(require(obj, "weight", path), f"{path}.weight", minimum=1, bits=32)
        if node_id in trusted:
            raise MalformedEvidence("node_id listed twice", field=f"{path}.node_id")
        trusted[node_id] = weight
    return trusted


def _check_claim(
    obj: Mapping[str, Any], key: str, computed: bytes, *, check: str, field: str
) -> None:
    """A hash the JSON states (not trusted, but it must agree with what we computed)."""
    if key not in obj or obj[key] is None:
        return
    claimed = parse_hex(obj[key], field, length=len(computed))
    if claimed != computed:
        raise ProofMismatch(
            f"{field} disagrees with the recomputed hash",
            check=check,
            expected=_hex(claimed),
            computed=_hex(computed),
        )


def _check_number_claim(value: object, number: int, *, quantity: bool) -> None:
    if value is None:
        return
    if quantity:
        claimed = parse_quantity(value, "receipt.blockNumber")
    else:
        claimed = parse_int(value, "receipt.blockNumber")
    if claimed != number:
        raise ProofMismatch(
            "receipt is for another block",
            check="receipt_block",
            expected=str(number),
            computed=str(claimed),
        )


def _select_log(logs: tuple[DecodedLog, ...], index: int | None) -> DecodedLog | None:
    if index is None:
        return None
    if index >= len(logs):
        raise MalformedEvidence(
            f"receipt has {len(logs)} logs, no log {index}", check="log_index", field="log_index"
        )
    return logs[index]


def _hex(data: bytes) -> str:
    return "0x" + data.hex()
