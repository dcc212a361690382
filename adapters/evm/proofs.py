"""Evidence bundles from plain JSON-RPC output: one receipt trie per block, proofs taken from it.

The receipts of a block (``eth_getBlockReceipts``, or one ``eth_getTransactionReceipt`` per
transaction) are re-encoded and put in a trie whose root must be the header's ``receiptsRoot``;
a mismatch means the endpoint served receipts of another block or altered ones, and is reported
as ``UnexpectedResponse`` naming it. This is a consistency check on what one endpoint said, not
verification: the relay still checks every bundle against its own trust root.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from adapters.base import UnexpectedResponse
from verifier.errors import GatewayError
from verifier.evm.receipt import encode_receipt, receipt_key
from verifier.merkle.mpt import compute_mpt_proof, compute_mpt_root

FORMAT: Final = "interop-evidence/1"
FAMILY: Final = "evm"
CRYPTO: Final = "keccak256-secp256k1"


@dataclass(frozen=True)
class BlockReceipts:
    """A block header and all its receipts in transaction order, consistent with each other."""

    header: dict[str, Any]
    receipts: tuple[dict[str, Any], ...]
    items: dict[bytes, bytes]
    """The receipt trie: rlp(transactionIndex) -> consensus encoding."""
    endpoint: str

    @property
    def number(self) -> int:
        return int(self.header["number"], 16)

    @property
    def hash(self) -> str:
        return str(self.header["hash"]).lower()

    def proof(self, index: int) -> list[str]:
        return ["0x" + node.hex() for node in compute_mpt_proof(self.items, receipt_key(index))]

    def bundle(
        self, index: int, log_index: int, *, chain: str, event: dict[str, Any]
    ) -> dict[str, Any]:
        """The ``interop-evidence/1`` bundle of receipt ``index``'s log ``log_index``."""
        return {
            "format": FORMAT,
            "family": FAMILY,
            "chain_id": chain,
            "crypto": CRYPTO,
            "block": self.header,
            "receipt": self.receipts[index],
            "proof": self.proof(index),
            "log_index": log_index,
            "trust": {"block_hash": self.hash, "event": event},
        }


def build_block_receipts(
    header: dict[str, Any], receipts: list[Any], *, chain: str, endpoint: str
) -> BlockReceipts:
    """Check that ``receipts`` are exactly ``header``'s and build its receipt trie once."""

    def bad(reason: str) -> UnexpectedResponse:
        return UnexpectedResponse(
            f"block {header.get('number')}: {reason}", chain=chain, endpoint=endpoint
        )

    block_hash = header.get("hash")
    if not isinstance(block_hash, str) or not isinstance(header.get("number"), str):
        raise bad("the block has no hash or number")
    transactions = header.get("transactions")
    if not isinstance(transactions, list):
        raise bad("the block has no transaction list")
    if len(receipts) != len(transactions):
        raise bad(f"{len(receipts)} receipts for {len(transactions)} transactions")
    ordered: list[dict[str, Any] | None] = [None] * len(receipts)
    for receipt in receipts:
        if not isinstance(receipt, dict):
            raise bad("a receipt is not an object")
        if str(receipt.get("blockHash", "")).lower() != block_hash.lower():
            raise bad("a receipt names another block")
        try:
            index = int(receipt["transactionIndex"], 16)
        except (KeyError, TypeError, ValueError):
            raise bad("a receipt has no transactionIndex") from None
        if not 0 <= index < len(ordered) or ordered[index] is not None:
            raise bad(f"receipt index {index} is out of range or repeated")
        ordered[index] = receipt
    complete = tuple(r for r in ordered if r is not None)
    try:
        items = {receipt_key(i): encode_receipt(r) for i, r in enumerate(complete)}
        root = compute_mpt_root(items)
    except GatewayError as exc:
        raise bad(f"a receipt cannot be encoded: {exc}") from exc
    if "0x" + root.hex() != str(header.get("receiptsRoot", "")).lower():
        raise bad(
            f"the receipts' root 0x{root.hex()} is not the header's receiptsRoot "
            f"{header.get('receiptsRoot')}"
        )
    return BlockReceipts(header=header, receipts=complete, items=items, endpoint=endpoint)
