"""FISCO BCOS 3.x binary Merkle tree: ``txsRoot``/``receiptsRoot`` and the node's proof format.

Tree (``bcos-crypto/merkle/Merkle.h``, width 2): the leaves are the 32-byte tx (or receipt)
hashes in block order, no index, no prefix. Each next level hashes pairs ``H(a ‖ b)``; a lone
last node of an odd-length level is hashed alone, ``H(a)`` (never duplicated). One leaf: the
root is the leaf itself. No leaves: 32 zero bytes (what the RPC prints).

Proof (``Ledger::getTxProof``/``getReceiptProof``, JSON ``txProof``/``txReceiptProof``): a flat
list of 64-hex items without ``0x``. One leaf: ``[leaf]``. Otherwise, for every level below
the root, starting at the leaves: a count marker (big-endian uint32 ``c`` in the first 4 bytes,
28 zero bytes) followed by the ``c`` (1 or 2) nodes of the pair that holds the node on the path,
the path node included. The proof does not reveal the leaf's index: the verifier only checks
that the running hash is one of the pair, hashes the pair, and compares the last hash with
the root, as the node does. Proofs exist from node 3.2.0 on.

No domain separation between leaves and inner nodes: callers must derive the leaf themselves
from the full transaction or receipt content, never take it from the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from verifier.errors import MalformedEvidence, MalformedProof, ProofMismatch
from verifier.hashing import Hasher

HASH_LENGTH: Final = 32
EMPTY_ROOT: Final = bytes(HASH_LENGTH)
MAX_PROOF_LEVELS: Final = 64
"""2**64 leaves is far beyond any block; longer proofs are rejected before any hashing."""
MAX_PROOF_ITEMS: Final = MAX_PROOF_LEVELS * 3

_WIDTH: Final = 2
_ITEM: Final = re.compile(r"(?:0[xX])?([0-9a-fA-F]{64})")
_MARKER_PAD: Final = bytes(HASH_LENGTH - 4)


@dataclass(frozen=True, slots=True)
class LeafPositions:
    """The leaf positions a verified proof path allows.

    At each level the path says which node of the pair the running hash was. Where both nodes
    of a pair are equal (identical subtrees, e.g. identical receipts in one block), the path
    fits either side, so the bit of that level is free: ``ambiguous`` has it set and ``first``
    has it clear (the node proves the first of identical leaves).
    """

    first: int
    ambiguous: int
    levels: int

    def allows(self, index: int) -> bool:
        """True when ``index`` is one of the positions the path fits."""
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            return False
        return index >> self.levels == 0 and index & ~self.ambiguous == self.first

    def overlaps(self, other: LeafPositions) -> bool:
        """True when some position is allowed by both paths."""
        return (self.first ^ other.first) & ~(self.ambiguous | other.ambiguous) == 0


def compute_merkle_root(leaves: Sequence[bytes], hasher: Hasher) -> bytes:
    """The 3.x Merkle root of ``leaves`` (32-byte hashes, block order)."""
    level = _check_leaves(leaves)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = _next_level(level, hasher)
    return level[0]


def compute_merkle_proof(
    leaves: Sequence[bytes], index: int, hasher: Hasher, *, as_node: bool = True
) -> list[str]:
    """The proof for ``leaves[index]``, item for item what a 3.x node returns.

    Like the node, which looks the leaf up by hash (``ranges::find``), the proof is built for
    the FIRST leaf equal to ``leaves[index]``: with duplicate leaves (e.g. identical receipts)
    a later duplicate gets the first one's proof. That proof verifies against the same root,
    but its path may not allow ``index`` (see :class:`LeafPositions`). ``as_node=False`` builds
    the path of ``index`` itself: what an adapter sends when the node's proof resolves to a
    twin at another position.
    """
    level = _check_leaves(leaves)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(level):
        raise MalformedEvidence(f"leaf index {index!r} outside 0..{len(level) - 1}", field="index")
    position = level.index(level[index]) if as_node else index
    if len(level) == 1:
        return [level[0].hex()]
    proof: list[str] = []
    while len(level) > 1:
        start = position - position % _WIDTH
        group = level[start : start + _WIDTH]
        proof.append(_marker(len(group)).hex())
        proof.extend(node.hex() for node in group)
        level = _next_level(level, hasher)
        position //= _WIDTH
    return proof


def verify_merkle_proof(
    proof: Sequence[str], leaf: bytes, root: bytes, hasher: Hasher, *, check: str
) -> LeafPositions:
    """Raise unless ``proof`` leads from ``leaf`` to ``root``; ``check`` names the proof kind.

    Returns the leaf positions in the block that the path allows (at each level, which node
    of the pair the running hash was; either, where both are equal). The proof format carries
    no index, so this is the only way to tie a receipt to the transaction at the same
    position.

    Stricter than the node on shape, never looser on hashing: items are 64 hex digits
    (``0x`` optional); a count marker is 1 or 2 in the first 4 bytes followed by 28 zero bytes;
    the last level must hold two nodes (the level below a root always does); a one-item proof
    must be the leaf itself; at most ``MAX_PROOF_LEVELS`` levels.
    """
    _check_hash(leaf, "leaf", check)
    _check_hash(root, "root", check)
    items = _parse_items(proof, check)
    if len(items) == 1:
        if items[0] != leaf:
            raise ProofMismatch(
                "one-item proof is not the leaf",
                check=check,
                expected=leaf.hex(),
                computed=items[0].hex(),
                index=0,
            )
        current, positions = leaf, LeafPositions(first=0, ambiguous=0, levels=0)
    else:
        current, positions = _walk(items, leaf, hasher, check)
    if current != root:
        raise ProofMismatch(
            "proof does not lead to the root",
            check=check,
            expected="0x" + root.hex(),
            computed="0x" + current.hex(),
        )
    return positions


def _walk(
    items: list[bytes], leaf: bytes, hasher: Hasher, check: str
) -> tuple[bytes, LeafPositions]:
    current, i, level, count, position, ambiguous = leaf, 0, 0, 0, 0, 0
    while i < len(items):
        if level >= MAX_PROOF_LEVELS:
            raise MalformedProof(f"more than {MAX_PROOF_LEVELS} levels", check=check, index=i)
        count = _count(items[i], i, level, check)
        if i + 1 + count > len(items):
            raise MalformedProof(
                f"level {level}: truncated, marker announces {count} nodes but only "
                f"{len(items) - i - 1} follow",
                check=check,
                index=i,
            )
        group = items[i + 1 : i + 1 + count]
        if current not in group:
            raise ProofMismatch(
                f"level {level}: the running hash is not in the proof's pair",
                check=check,
                expected=" or ".join(node.hex() for node in group),
                computed=current.hex(),
                index=i,
            )
        position |= group.index(current) << level
        if count == _WIDTH and group[0] == group[1]:
            ambiguous |= 1 << level
        current = hasher(b"".join(group))
        i += 1 + count
        level += 1
    if count != _WIDTH:
        raise MalformedProof(
            f"level {level - 1}: the last level below the root must hold 2 nodes, not {count}",
            check=check,
            index=len(items) - count - 1,
        )
    return current, LeafPositions(first=position, ambiguous=ambiguous, levels=level)


def _count(marker: bytes, index: int, level: int, check: str) -> int:
    count = int.from_bytes(marker[:4], "big")
    if count not in (1, _WIDTH) or marker[4:] != _MARKER_PAD:
        raise MalformedProof(
            f"level {level}: bad count marker {marker.hex()} (want 1 or 2, then 28 zero bytes)",
            check=check,
            index=index,
        )
    return count


def _parse_items(proof: Sequence[str], check: str) -> list[bytes]:
    if isinstance(proof, str | bytes) or not isinstance(proof, Sequence):
        raise MalformedProof(
            f"expected a list of hex strings, got {type(proof).__name__}", check=check
        )
    if not proof:
        raise MalformedProof("empty proof", check=check)
    if len(proof) > MAX_PROOF_ITEMS:
        raise MalformedProof(f"{len(proof)} items, at most {MAX_PROOF_ITEMS}", check=check)
    items: list[bytes] = []
    for i, item in enumerate(proof):
        match = _ITEM.fullmatch(item) if isinstance(item, str) else None
        if match is None:
            raise MalformedProof(f"not 64 hex digits: {str(item)[:70]!r}", check=check, index=i)
        items.append(bytes.fromhex(match.group(1)))
    return items


def _marker(count: int) -> bytes:
    return count.to_bytes(4, "big") + _MARKER_PAD


def _next_level(level: list[bytes], hasher: Hasher) -> list[bytes]:
    return [hasher(b"".join(level[k : k + _WIDTH])) for k in range(0, len(level), _WIDTH)]


def _check_leaves(leaves: Sequence[bytes]) -> list[bytes]:
    level = list(leaves)
    for i, leaf in enumerate(level):
        if not isinstance(leaf, bytes) or len(leaf) != HASH_LENGTH:
            raise MalformedEvidence("leaf is not a 32-byte hash", field=f"leaves[{i}]")
    return level


def _check_hash(value: bytes, name: str, check: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_LENGTH:
        raise MalformedEvidence(f"{name} is not a 32-byte hash", check=check, field=name)
