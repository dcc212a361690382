"""Evidence bundles (``interop-evidence/1``): parse one and verify everything it claims.

The format is specified in ``docs/evidence-format.md``. A bundle carries a block header, one
receipt, the receipt's inclusion proof and the trust root the receiving side holds. Checking
it is all or nothing: :func:`verify_bundle` returns :class:`VerifiedEvidence` or raises the
:class:`~verifier.errors.VerificationError` of the first check that failed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from verifier.encoding import (
    parse_decimal_string,
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
from verifier.events import EventAbi, decode_event, parse_event_abi
from verifier.evm.header import parse_header as parse_evm_header
from verifier.evm.receipt import EvmReceipt, verify_receipt_proof
from verifier.fisco.header import FiscoHeader
from verifier.fisco.header import parse_header as parse_fisco_header
from verifier.fisco.receipt import compute_receipt_hash, decode_log_entries
from verifier.fisco.transaction import (
    NonceEncoding,
    compute_transaction_hash,
    nonce_encoding_for_version,
    parse_nonce,
)
from verifier.hashing import CryptoSuite, Hasher, hasher_for, keccak256
from verifier.limits import MAX_PROOF_ITEMS, MAX_SEALERS, check_count
from verifier.merkle.fisco import LeafPositions, verify_merkle_proof
from verifier.signatures.quorum import verify_signature_list
from verifier.types import DecodedLog, Family, VerifiedEvidence

FORMAT_V1: Final = "interop-evidence/1"
MAX_NONCE_DIGITS: Final = 20
"""A bound FISCO nonce is 1 to 20 decimal digits (a u64 printed in decimal fits). Short enough
that no 40-character address text fits in the digit run (docs/evidence-format.md)."""
MAX_GAS_USED: Final = (1 << 63) - 1
"""EVMC gas is int64: no FISCO receipt's gasUsed exceeds it."""
MAX_GAS_USED_DIGITS: Final = len(str(MAX_GAS_USED))
_NONCE_DIGITS: Final = re.compile(rb"[0-9]{1,%d}" % MAX_NONCE_DIGITS)
_CANONICAL_TO: Final = re.compile(r"0x[0-9a-f]{40}")
MAX_PIN_HEX_RUN: Final = 20
"""The longest run of ASCII hex digits a pinned input may hold (docs/evidence-format.md, P)."""
_HEX_RUN: Final = re.compile(rb"[0-9a-fA-F]{%d}" % (MAX_PIN_HEX_RUN + 1))


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
    check_count(len(proof), MAX_PROOF_ITEMS, field="proof", what="proof items")
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
    log = _select_log(receipt.logs, bundle.log_index)
    if log is not None and receipt.status == 0:
        # Before Byzantium (status None) a failed transaction kept no logs, so a log there is
        # from a successful one; from Byzantium on, only status 1 is success.
        raise VerificationError(
            "the receipt has status 0 (failed): its logs are not evidence", check="receipt_status"
        )
    event = _optional_event(bundle.trust)
    return VerifiedEvidence(
        family=bundle.family,
        chain_id=bundle.chain_id,
        crypto=bundle.crypto,
        block_number=header.number,
        block_hash=header.hash,
        receipt_hash=keccak256(receipt.encoded),
        log_index=bundle.log_index,
        log=log,
        quorum=None,
        receipt_status=receipt.status,
        event=None if log is None or event is None else decode_event(log, event, keccak256),
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
    positions = verify_merkle_proof(
        bundle.proof, receipt_hash, header.receipts_root, hasher, check="receipt_proof"
    )
    status = parse_int(require(bundle.receipt, "status", "receipt"), "receipt.status", bits=32)
    logs = decode_log_entries(bundle.receipt)
    log = _select_log(logs, bundle.log_index)
    event = None
    if log is not None:
        if status != 0:
            raise VerificationError(
                f"the receipt has status {status} (failed): its bytes are not evidence of a log",
                check="receipt_status",
            )
        binding = _parse_log_binding(bundle.trust)
        _verify_fisco_transaction(bundle, header, hasher, positions, receipt_hash, binding)
        _check_fisco_log_layout(bundle.receipt, logs, binding.to)
        event = decode_event(log, binding.event, hasher)
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
        receipt_status=status,
        event=event,
    )


@dataclass(frozen=True, slots=True)
class LogBinding:
    """What the receiving side pins before a FISCO log counts (``trust`` in the bundle).

    The transaction and receipt hashes are concatenations without lengths; these values are
    what forces every boundary (docs/evidence-format.md, "FISCO log binding").
    """

    chain_id: str
    group_id: str
    to: str
    """``0x`` + 40 lowercase hex digits, exactly as the transaction must carry it."""
    input: bytes
    event: EventAbi


def _parse_log_binding(trust: Mapping[str, Any]) -> LogBinding:
    chain_id = parse_str(require(trust, "chainID", "trust"), "trust.chainID")
    group_id = parse_str(require(trust, "groupID", "trust"), "trust.groupID")
    for name, value in (("chainID", chain_id), ("groupID", group_id)):
        if not value:
            raise MalformedEvidence("must not be empty", field=f"trust.{name}")
    call = parse_object(require(trust, "call", "trust"), "trust.call")
    to = parse_str(require(call, "to", "trust.call"), "trust.call.to")
    if not _CANONICAL_TO.fullmatch(to):
        raise MalformedEvidence(
            "must be 0x followed by 40 lowercase hex digits", field="trust.call.to"
        )
    call_input = parse_hex(require(call, "input", "trust.call"), "trust.call.input")
    if len(call_input) < 4:
        raise MalformedEvidence(
            "must hold at least a 4-byte function selector", field="trust.call.input"
        )
    if _HEX_RUN.search(call_input):
        raise MalformedEvidence(
            f"holds more than {MAX_PIN_HEX_RUN} consecutive hex-digit bytes, which could be "
            "the text of an address: such a pin cannot fix where the transaction's `to` is",
            field="trust.call.input",
        )
    event = parse_event_abi(require(trust, "event", "trust"), "trust.event")
    return LogBinding(chain_id, group_id, to, call_input, event)


def _optional_event(trust: Mapping[str, Any]) -> EventAbi | None:
    entry = trust.get("event")
    return None if entry is None else parse_event_abi(entry, "trust.event")


def _verify_fisco_transaction(  # noqa: PLR0917 - one step of _verify_fisco
    bundle: EvidenceBundle,
    header: FiscoHeader,
    hasher: Hasher,
    receipt_positions: LeafPositions,
    receipt_hash: bytes,
    binding: LogBinding,
) -> None:
    """Tie the receipt to its transaction and force the transaction's field boundaries.

    The transaction is proven under ``txsRoot`` at a position the receipt's proof path allows.
    Its hash is a plain concatenation, so its fields are trusted only once the split is
    unique: version 0, chainID and groupID equal to the trusted chain's, a nonce of 1 to 20
    decimal digits, and ``to``, ``input`` and ``abi`` exactly the pinned call. The argument
    that this suffices is in docs/evidence-format.md.
    """
    if bundle.transaction is None:
        raise MalformedEvidence(
            "a FISCO bundle that names a log_index must carry the transaction "
            "(getTransaction with requireProof) to bind the log to its emitter",
            check="transaction",
            field="transaction",
        )
    tx = bundle.transaction
    version = parse_int(require(tx, "version", "transaction"), "transaction.version", bits=32)
    if version != 0:
        _binding_failure(f"transaction version {version}, only version 0 is bound", "version")
    tx_hash, nonce, tx_positions = _prove_transaction(tx, header, hasher)
    _check_claim(tx, "hash", tx_hash, check="transaction_hash", field="transaction.hash")
    _check_claim(
        bundle.receipt,
        "transactionHash",
        tx_hash,
        check="receipt_transaction",
        field="receipt.transactionHash",
    )
    if tx_positions.levels != receipt_positions.levels or not tx_positions.overlaps(
        receipt_positions
    ):
        raise ProofMismatch(
            "the receipt and the transaction are at different positions in the block "
            f"(receipt hash 0x{receipt_hash.hex()})",
            check="receipt_transaction",
            expected=str(tx_positions.first),
            computed=str(receipt_positions.first),
        )
    _check_transaction_fields(tx, nonce, binding)


def _prove_transaction(
    tx: Mapping[str, Any], header: FiscoHeader, hasher: Hasher
) -> tuple[bytes, bytes, LeafPositions]:
    """The hash, raw nonce and proven positions of the transaction, in whichever JSON nonce
    form reproduces a hash under ``txsRoot``.

    Nodes print the nonce as its decimal text (<= 3.2 binaries) or as hex of its bytes (>= 3.3)
    whatever the chain's compatibility version, so both forms are tried, the version's likely
    one first. Safe: each candidate must be proven under the signed root, and the nonce rule
    (decimal digits) is applied to the bytes of the form that was proven.
    """
    proof = parse_list(require(tx, "txProof", "transaction"), "transaction.txProof")
    check_count(len(proof), MAX_PROOF_ITEMS, field="transaction.txProof", what="proof items")
    preferred = nonce_encoding_for_version(header.version)
    forms: tuple[NonceEncoding, ...] = (
        (preferred, "decimal") if preferred == "hex" else (preferred, "hex")
    )
    errors: list[VerificationError] = []
    for form in forms:
        try:
            nonce = parse_nonce(require(tx, "nonce", "transaction"), form)
            tx_hash = compute_transaction_hash(tx, hasher, nonce_encoding=form)
            positions = verify_merkle_proof(
                proof, tx_hash, header.txs_root, hasher, check="transaction_proof"
            )
        except VerificationError as exc:
            errors.append(exc)
            continue
        return tx_hash, nonce, positions
    raise errors[0]


def _check_transaction_fields(tx: Mapping[str, Any], nonce: bytes, binding: LogBinding) -> None:
    chain_id = parse_str(require(tx, "chainID", "transaction"), "transaction.chainID")
    if chain_id != binding.chain_id:
        _binding_failure(f"chainID {chain_id!r} is not the trusted {binding.chain_id!r}", "chainID")
    group_id = parse_str(require(tx, "groupID", "transaction"), "transaction.groupID")
    if group_id != binding.group_id:
        _binding_failure(f"groupID {group_id!r} is not the trusted {binding.group_id!r}", "groupID")
    if not _NONCE_DIGITS.fullmatch(nonce):
        _binding_failure(
            f"the nonce {nonce[:48]!r} is not 1 to {MAX_NONCE_DIGITS} decimal digits", "nonce"
        )
    to = parse_str(require(tx, "to", "transaction"), "transaction.to")
    if to != binding.to:
        _binding_failure(f"to {to[:50]!r} is not the pinned {binding.to}", "to")
    call_input = parse_hex(require(tx, "input", "transaction"), "transaction.input")
    if call_input != binding.input:
        _binding_failure("input is not the pinned call's input", "input")
    if parse_str(require(tx, "abi", "transaction"), "transaction.abi") != "":
        _binding_failure("abi is not empty", "abi")


def _binding_failure(message: str, field: str) -> NoReturn:
    raise VerificationError(
        f"transaction.{field}: {message}; the transaction hash does not fix where its fields "
        "end, so only the pinned call binds a log",
        check="transaction_binding",
    )


def _check_fisco_log_layout(
    receipt: Mapping[str, Any], logs: tuple[DecodedLog, ...], emitter: str
) -> None:
    """Refuse a log whose bytes could have been split differently under the same hash.

    With status 0, no output, no contract address, a gasUsed that fits the EVM's int64, a
    version-0 receipt (no effectiveGasPrice) and exactly one log whose address is the called
    contract, every split of the hashed bytes gives the same log; how many topics it has, and
    where its data ends, is then forced by the strict event decoding.
    """
    problems = []
    if parse_hex(require(receipt, "output", "receipt"), "receipt.output") != b"":
        problems.append("the receipt has output")
    if parse_int(require(receipt, "version", "receipt"), "receipt.version", bits=32) != 0:
        problems.append("the receipt version is not 0")
    if parse_str(require(receipt, "contractAddress", "receipt"), "receipt.contractAddress"):
        problems.append("the receipt has a contract address")
    gas_used = parse_decimal_string(require(receipt, "gasUsed", "receipt"), "receipt.gasUsed")
    if len(gas_used) > MAX_GAS_USED_DIGITS or int(gas_used) > MAX_GAS_USED:
        problems.append(f"gasUsed {gas_used[:40]} is beyond the EVM's int64 gas")
    if len(logs) != 1:
        problems.append(f"the receipt has {len(logs)} logs, not 1")
    elif _log_address_text(receipt) != emitter[2:]:
        problems.append(
            f"the log is from {_log_address_text(receipt)[:40]!r}, not the called contract "
            f"{emitter} (hashed as its 40 lowercase hex digits)"
        )
    if problems:
        raise VerificationError(
            "the log's layout is not forced by the receipt hash: " + "; ".join(problems),
            check="log_binding",
        )


def _log_address_text(receipt: Mapping[str, Any]) -> str:
    """The one log's address exactly as hashed: its text, case included."""
    entries = parse_list(require(receipt, "logEntries", "receipt"), "receipt.logEntries")
    entry = parse_object(entries[0], "receipt.logEntries[0]")
    return parse_str(require(entry, "address", "receipt.logEntries[0]"), "address")


def _parse_sealers(trust: Mapping[str, Any]) -> dict[bytes, int]:
    sealers = parse_list(require(trust, "sealers", "trust"), "trust.sealers")
    if not sealers:
        raise MalformedEvidence("the trusted sealer set is empty", field="trust.sealers")
    check_count(len(sealers), MAX_SEALERS, field="trust.sealers", what="sealers")
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


def _select_log(logs: Sequence[DecodedLog], index: int | None) -> DecodedLog | None:
    if index is None:
        return None
    if index >= len(logs):
        raise MalformedEvidence(
            f"receipt has {len(logs)} logs, no log {index}", check="log_index", field="log_index"
        )
    return logs[index]


def _hex(data: bytes) -> str:
    return "0x" + data.hex()
