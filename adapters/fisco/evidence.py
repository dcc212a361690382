"""The evidence of a ``seal()``: fetch its bundle from one endpoint, and refuse anything else.

A FISCO log is evidence only from the exact pinned call (docs/evidence-format.md, "FISCO log
binding"). The adapter does not judge evidence (the relay runs ``verify_bundle``), but it reports
facts only from transactions that *are* the configured gateway's ``seal()`` by every rule the
verifier applies, so a look-alike contract, a seal through a contract, a reverted or a
re-split transaction never becomes a fact, whatever the node's log filter returned.

Twin receipts (relay-protocol requirement 12): when the node's receipt proof resolves to an
identical receipt at a position the seal's own index is not among, the proof is rebuilt for
that index from all the block's receipts (``compute_merkle_proof(..., as_node=False)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from adapters.base import UnexpectedResponse
from adapters.fisco.rpc import FiscoRpcClient
from adapters.fisco.settings import FiscoSettings
from verifier.errors import GatewayError
from verifier.events import decode_event, parse_event_abi
from verifier.fisco.receipt import compute_receipt_hash
from verifier.fisco.transaction import compute_transaction_hash
from verifier.hashing import Hasher
from verifier.merkle.fisco import compute_merkle_proof, verify_merkle_proof
from verifier.messages import SEALED_EVENT, Seal, seal_call_data, seal_from_event
from verifier.types import DecodedLog

FORMAT: Final = "interop-evidence/1"
FAMILY: Final = "fisco-bcos-3"
_NONCE_DIGITS: Final = re.compile(r"[0-9]{1,20}")
_HEX: Final = re.compile(r"(?:0x)?([0-9a-fA-F]*)")
SEALED_ABI: Final = parse_event_abi(SEALED_EVENT)


@dataclass(frozen=True, slots=True)
class SealEvidence:
    seal: Seal
    bundle: dict[str, Any]
    endpoint: str
    height: int
    tx_hash: str
    tx_index: int


def trust_for(settings: FiscoSettings, hasher: Hasher) -> dict[str, Any]:
    """The trust a bundle carries: sealers from configuration, the pinned call and event."""
    return {
        "sealers": [
            {"node_id": node_id.lower().removeprefix("0x"), "weight": weight}
            for node_id, weight in settings.sealers
        ],
        "chainID": settings.chain_id,
        "groupID": settings.group_id,
        "call": {"to": settings.gateway_hex, "input": "0x" + seal_call_data(hasher).hex()},
        "event": SEALED_EVENT,
    }


def hex_bytes(value: object) -> bytes | None:
    """``0x``-hex (or bare hex) text as bytes; None when it is not."""
    if not isinstance(value, str):
        return None
    match = _HEX.fullmatch(value)
    if match is None or len(match.group(1)) % 2:
        return None
    return bytes.fromhex(match.group(1))


def _nonce_ok(text: object) -> bool:
    """T3 in either JSON form: the decimal text (<= 3.2) or hex of its bytes (>= 3.3)."""
    if not isinstance(text, str):
        return False
    if _NONCE_DIGITS.fullmatch(text):
        return True
    raw = hex_bytes(text)
    return raw is not None and _NONCE_DIGITS.fullmatch(raw.decode("latin-1")) is not None


def seal_call_problem(
    tx: dict[str, Any], receipt: dict[str, Any], settings: FiscoSettings, hasher: Hasher
) -> str | None:
    """Why ``tx``/``receipt`` are not exactly a successful direct ``seal()`` of the gateway."""
    input_hex = "0x" + seal_call_data(hasher).hex()
    checks: list[tuple[bool, str]] = [
        (tx.get("version") == 0, "transaction version is not 0"),
        (tx.get("chainID") == settings.chain_id, "chainID differs"),
        (tx.get("groupID") == settings.group_id, "groupID differs"),
        (_nonce_ok(tx.get("nonce")), "nonce is not 1-20 decimal digits"),
        (tx.get("to") == settings.gateway_hex, "not a call to the gateway"),
        (tx.get("input") == input_hex, "input is not seal()"),
        (tx.get("abi", "") == "", "abi is not empty"),
        (receipt.get("status") == 0, "the transaction failed"),
        (receipt.get("version", 0) == 0, "receipt version is not 0"),
        (receipt.get("output") in ("0x", ""), "seal() returned output"),
        (receipt.get("contractAddress", "") == "", "receipt has a contract address"),
        (receipt.get("transactionHash") == tx.get("hash"), "receipt of another transaction"),
    ]
    for ok, reason in checks:
        if not ok:
            return reason
    logs = receipt.get("logEntries")
    if not isinstance(logs, list) or len(logs) != 1:
        return "the receipt does not hold exactly one log"
    if not isinstance(logs[0], dict) or logs[0].get("address") != settings.gateway.hex():
        return "the log is not the gateway's"
    return None


def decode_sealed(entry: dict[str, Any], hasher: Hasher) -> Seal:
    """The ``Sealed`` event of a receipt log entry (strict decoding); raises GatewayError."""
    topics = [hex_bytes(t) for t in entry.get("topics", [])]
    data = hex_bytes(entry.get("data"))
    address = hex_bytes(entry.get("address"))
    if data is None or address is None or any(t is None or len(t) != 32 for t in topics):
        raise GatewayError("log entry is not hex")
    log = DecodedLog(address=address, topics=tuple(t for t in topics if t is not None), data=data)
    return seal_from_event(decode_event(log, SEALED_ABI, hasher))


@dataclass(frozen=True, slots=True)
class RefusedSeal:
    """A transaction that one endpoint serves as something other than exactly the gateway's
    successful ``seal()``: the endpoint's fault, or a seal made by another SDK (the caller
    decides, with :func:`consistency_problem` and the other endpoints)."""

    reason: str
    tx: dict[str, Any]
    receipt: dict[str, Any]
    endpoint: str


async def fetch_seal_evidence(
    client: FiscoRpcClient, settings: FiscoSettings, hasher: Hasher, tx_hash: str
) -> SealEvidence | RefusedSeal:
    """The bundle of ``seal()`` transaction ``tx_hash`` from ``client``, or why the
    transaction as served is not exactly the gateway's successful ``seal()``."""
    receipt = _object(await client.call("getTransactionReceipt", tx_hash, True), client, "receipt")
    tx = _object(await client.call("getTransaction", tx_hash, True), client, "transaction")
    problem = seal_call_problem(tx, receipt, settings, hasher)
    if problem is not None:
        return RefusedSeal(problem, tx, receipt, client.name)
    try:
        seal = decode_sealed(receipt["logEntries"][0], hasher)
    except GatewayError as exc:
        return RefusedSeal(f"the log is not a Sealed event: {exc}", tx, receipt, client.name)
    height = receipt.get("blockNumber")
    if not isinstance(height, int) or isinstance(height, bool):
        raise UnexpectedResponse(
            "receipt blockNumber is not an integer", chain=settings.chain, endpoint=client.name
        )
    block = _object(await client.call("getBlockByNumber", height, False, True), client, "block")
    hashes = block.pop("transactions", None)
    if not isinstance(hashes, list) or tx_hash not in hashes:
        raise UnexpectedResponse(
            f"block {height} does not list {tx_hash}", chain=settings.chain, endpoint=client.name
        )
    index = hashes.index(tx_hash)
    proof = receipt.get("txReceiptProof")
    if not isinstance(proof, list):
        raise UnexpectedResponse("no txReceiptProof", chain=settings.chain, endpoint=client.name)
    if not _proof_allows(proof, receipt, block, index, hasher):
        proof = await _own_index_proof(client, settings, hashes, index, hasher)
    bundle = {
        "format": FORMAT,
        "family": FAMILY,
        "chain_id": settings.chain,
        "crypto": settings.crypto.value,
        "block": block,
        "receipt": receipt,
        "proof": proof,
        "log_index": 0,
        "transaction": tx,
        "trust": trust_for(settings, hasher),
    }
    return SealEvidence(seal, bundle, client.name, height, tx_hash, index)


def _proof_allows(
    proof: list[Any], receipt: dict[str, Any], block: dict[str, Any], index: int, hasher: Hasher
) -> bool:
    """Whether the node's proof path allows the seal's own index. Not a verdict (the relay
    verifies): a proof that does not even lead to the root is passed on as the node gave it."""
    leaf, root = hex_bytes(receipt.get("hash")), hex_bytes(block.get("receiptsRoot"))
    if leaf is None or root is None:
        return True
    try:
        positions = verify_merkle_proof(proof, leaf, root, hasher, check="receipt_proof")
    except GatewayError:
        return True
    return positions.allows(index)


async def _own_index_proof(
    client: FiscoRpcClient,
    settings: FiscoSettings,
    hashes: list[Any],
    index: int,
    hasher: Hasher,
) -> list[str]:
    """Twin receipts: the proof for ``index`` itself, from every receipt of the block."""
    leaves: list[bytes] = []
    for tx_hash in hashes:
        receipt = _object(
            await client.call("getTransactionReceipt", tx_hash, False), client, "receipt"
        )
        leaf = hex_bytes(receipt.get("hash"))
        if leaf is None or len(leaf) != 32:
            raise UnexpectedResponse(
                "receipt hash is not 32 bytes", chain=settings.chain, endpoint=client.name
            )
        leaves.append(leaf)
    return compute_merkle_proof(leaves, index, hasher, as_node=False)


def _object(value: Any, client: FiscoRpcClient, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnexpectedResponse(
            f"{what} is not a JSON object", chain=client.chain, endpoint=client.name
        )
    return value


async def consistency_problem(
    client: FiscoRpcClient,
    settings: FiscoSettings,
    hasher: Hasher,
    refused: RefusedSeal,
    *,
    height: int,
    tx_hash: str,
    seal_number: int,
) -> str | None:
    """Why ``client``'s answers about a refused seal do not hold together (its fault); None
    when they do: the receipt holds the gateway's ``Sealed`` log ``seal_number`` that
    ``getLogs`` reported at ``height``, the transaction and the receipt hash to what they
    claim and name each other, and the receipt's proof leads to the block's ``receiptsRoot``
    at the transaction's position. Not verification (the block itself is not checked here):
    it tells an altered answer from a seal that really is not exactly ``seal()``."""
    tx, receipt = refused.tx, refused.receipt
    logs = receipt.get("logEntries")
    if not isinstance(logs, list) or not any(
        _is_sealed(entry, settings, hasher, seal_number) for entry in logs
    ):
        return f"the receipt does not hold the gateway's Sealed log {seal_number}"
    wanted = hex_bytes(tx_hash)
    if receipt.get("blockNumber") != height:
        return f"the receipt is not in block {height}"
    if hex_bytes(tx.get("hash")) != wanted or hex_bytes(receipt.get("transactionHash")) != wanted:
        return f"the transaction or receipt is not {tx_hash}"
    try:
        if wanted not in _transaction_hashes(tx, hasher):
            return "the transaction does not hash to its hash"
        receipt_hash = compute_receipt_hash(receipt, hasher)
        if hex_bytes(receipt.get("hash")) != receipt_hash:
            return "the receipt does not hash to its hash"
        block = _object(await client.call("getBlockByNumber", height, False, True), client, "block")
        listed = [hex_bytes(h) for h in block.get("transactions") or []]
        root = hex_bytes(block.get("receiptsRoot"))
        if wanted not in listed or root is None:
            return f"block {height} does not list the transaction or has no receiptsRoot"
        proof = receipt.get("txReceiptProof")
        if not isinstance(proof, list):
            return "no txReceiptProof"
        positions = verify_merkle_proof(proof, receipt_hash, root, hasher, check="receipt_proof")
        if not positions.allows(listed.index(wanted)):
            return "the receipt's proof is for another position"
    except GatewayError as exc:
        return f"does not hold together: {exc}"
    return None


def _transaction_hashes(tx: dict[str, Any], hasher: Hasher) -> set[bytes | None]:
    """The transaction's hash under each JSON nonce form that parses (decimal text <= 3.2,
    hex of its bytes >= 3.3)."""
    out: set[bytes | None] = set()
    for encoding in ("hex", "decimal"):
        try:
            out.add(compute_transaction_hash(tx, hasher, nonce_encoding=encoding))
        except GatewayError:
            continue
    return out


def _is_sealed(entry: object, settings: FiscoSettings, hasher: Hasher, number: int) -> bool:
    if not isinstance(entry, dict) or hex_bytes(entry.get("address")) != settings.gateway:
        return False
    topics = entry.get("topics")
    return isinstance(topics, list) and [hex_bytes(t) for t in topics] == [
        SEALED_ABI.topic0(hasher),
        number.to_bytes(32, "big"),
    ]
