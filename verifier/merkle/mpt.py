"""Ethereum Merkle Patricia Trie: inclusion proofs (verifier side) and roots/proofs (builder side).

Node shapes (Yellow Paper, appendix D): a branch is a 17-item list (16 children by nibble, then
a value); an extension or a leaf is ``[hex_prefix(path), child_or_value]``, the flag nibble of
the hex-prefix path saying which (2 or 3: leaf) and whether the path has odd length (1 or 3).
A child is referenced by ``keccak(rlp(node))`` when that encoding is 32 bytes or longer and is
embedded in its parent as the node's own RLP list when shorter. The root is always hashed.

Proof wire format (go-ethereum ``Trie.Prove``, EIP-1186 ``accountProof``): the RLP encodings of
the hashed nodes on the key's path, root first; embedded nodes are not listed separately. The
verifier also accepts py-trie's layout, which lists an embedded node again after its parent:
such an item is skipped only when it is byte for byte the embedded node just walked, so it adds
nothing that the hashed parent did not already commit to.

Size bounds, checked before any hashing so that hostile input cannot buy much work:

* ``max_node_size`` (default :data:`MAX_NODE_SIZE` = 532) bounds every proof item but the last.
  An item followed by another is an inner node referencing the next by hash: a branch or an
  extension. In the tries Ethereum commits to (receipts, transactions, withdrawals, state,
  storage) no key is a prefix of another, so branches never hold a value and the largest
  branch is 16 references of 33 bytes, an empty value and a 3-byte list header: 532 bytes.
  Tries whose branches do hold values need a larger bound.
* the last item may be the leaf that holds the value: up to ``max_node_size + max_value_size``.
  Receipts have no size limit of their own, only a gas one (8 gas per byte of log data: under
  7.5 MB at a 60M gas limit), so the default :data:`MAX_VALUE_SIZE` is 16 MiB.
* ``max_nodes`` (default 16): a receipt key below index 65536 has at most 6 nibbles, so its
  path holds at most 7 hashed nodes; state and storage paths take about 8 to 10 in practice.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Final

from verifier.encoding import parse_list
from verifier.errors import MalformedEvidence, MalformedProof, ProofMismatch
from verifier.hashing import Hasher, keccak256
from verifier.limits import MAX_MPT_PROOF_NODES
from verifier.rlp import ItemBounds, RlpError, encode, encode_list_of_encoded, list_items
from verifier.rlp import list_payload as _list_payload

MAX_NODES: Final = MAX_MPT_PROOF_NODES
MAX_NODE_SIZE: Final = 532
MAX_VALUE_SIZE: Final = 1 << 24
HASH_LENGTH: Final = 32

_NIBBLES: Final = "0123456789abcdef"
_NIBBLE: Final = {c: i for i, c in enumerate(_NIBBLES)}
_BRANCH: Final = 17
_PAIR: Final = 2
_EMPTY: Final = b"\x80"
_HASH_REF: Final = b"\xa0"
# What _step found: the value, a child referenced by hash, or a child embedded in place.
_VALUE: Final = 0
_HASHED: Final = 1
_INLINE: Final = 2


def verify_mpt_proof(
    root: bytes,
    key: bytes,
    proof: Sequence[bytes],
    *,
    hasher: Hasher = keccak256,
    check: str,
    max_nodes: int = MAX_NODES,
    max_node_size: int = MAX_NODE_SIZE,
    max_value_size: int = MAX_VALUE_SIZE,
) -> bytes:
    """Walk ``proof`` from ``root`` along ``key`` and return the value stored under ``key``.

    Raises MalformedProof for a proof that cannot be walked (empty, too many or too large
    nodes, bad RLP or node shape, a missing node, unused trailing nodes) and ProofMismatch for
    a node whose hash differs from its reference, or for a proof that shows ``key`` absent:
    inclusion is required. ``check`` names the proof kind in every error.
    """
    _check_bounds(
        root,
        key,
        proof,
        check=check,
        max_nodes=max_nodes,
        max_node_size=max_node_size,
        max_value_size=max_value_size,
    )
    nibbles = key.hex()
    pos = index = 0
    data = _enter(proof, 0, root, hasher, check)
    start, stop = _payload(data, check, 0)
    while True:
        kind, s, e, pos = _step(data, start, stop, nibbles, pos, check=check, index=index)
        if kind == _VALUE:
            break
        if kind == _INLINE:
            start, stop = s, e
            # py-trie layout: the embedded node listed again right after its parent.
            if index + 1 < len(proof) and proof[index + 1] == data[s - 1 : e]:
                index += 1
            continue
        index += 1
        data = _enter(proof, index, data[s:e], hasher, check)
        start, stop = _payload(data, check, index)
    if index != len(proof) - 1:
        raise MalformedProof("unused trailing proof nodes", check=check, index=index + 1)
    if e - s > max_value_size:
        raise MalformedProof(f"value of {e - s} bytes exceeds {max_value_size}", check=check)
    return bytes(data[s:e])


def parse_proof_nodes(proof: object, *, check: str, max_nodes: int = MAX_NODES) -> list[bytes]:
    """Proof nodes from a list (or tuple) of ``0x`` hex strings, the wire format; bounded."""
    items = proof if isinstance(proof, tuple) else parse_list(proof, "proof")
    if not items:
        raise MalformedProof("empty proof", check=check)
    if len(items) > max_nodes:
        raise MalformedProof(f"{len(items)} nodes, more than {max_nodes}", check=check)
    return [_node_from_hex(item, check, i) for i, item in enumerate(items)]


def _node_from_hex(item: object, check: str, index: int) -> bytes:
    """Strict ``0x`` hex; ``bytes.fromhex`` alone would also skip whitespace."""
    if isinstance(item, str) and item[:2] in ("0x", "0X"):
        try:
            node = bytes.fromhex(item[2:])
        except ValueError:
            pass
        else:
            if 2 * len(node) == len(item) - 2:
                return node
    raise MalformedProof("node is not 0x-prefixed even-length hex", check=check, index=index)


def _check_bounds(
    root: bytes,
    key: bytes,
    proof: Sequence[bytes],
    *,
    check: str,
    max_nodes: int,
    max_node_size: int,
    max_value_size: int,
) -> None:
    if not isinstance(root, bytes) or len(root) != HASH_LENGTH:
        raise MalformedEvidence("trie root must be 32 bytes", check=check, field="root")
    if not isinstance(key, bytes):
        raise MalformedEvidence("trie key must be bytes", check=check, field="key")
    if not proof:
        raise MalformedProof("empty proof", check=check)
    if len(proof) > max_nodes:
        raise MalformedProof(f"{len(proof)} nodes, more than {max_nodes}", check=check)
    last = len(proof) - 1
    for i, node in enumerate(proof):
        if not isinstance(node, bytes):
            raise MalformedProof("node is not bytes", check=check, index=i)
        limit = max_node_size if i < last else max_node_size + max_value_size
        if len(node) > limit:
            raise MalformedProof(f"node of {len(node)} bytes exceeds {limit}", check=check, index=i)


def _enter(
    proof: Sequence[bytes], index: int, reference: bytes, hasher: Hasher, check: str
) -> bytes:
    """Proof item ``index``, after checking that it hashes to ``reference``."""
    if index >= len(proof):
        raise MalformedProof(
            f"proof ends before the value (missing node 0x{reference.hex()})",
            check=check,
            index=index,
        )
    node = proof[index]
    digest = hasher(node)
    if digest != reference:
        raise ProofMismatch(
            "node hash differs from its reference",
            check=check,
            expected="0x" + reference.hex(),
            computed="0x" + digest.hex(),
            index=index,
        )
    return node


def _payload(node: bytes, check: str, index: int) -> tuple[int, int]:
    try:
        return _list_payload(node)
    except RlpError as exc:
        raise MalformedProof(
            f"node is not one RLP list: {exc.detail}", check=check, index=index
        ) from None


def _step(
    data: bytes, start: int, stop: int, key: str, pos: int, *, check: str, index: int
) -> tuple[int, int, int, int]:
    """One node: ``(kind, start, end, key position)`` of the value or child it leads to."""
    try:
        items = list_items(data, start, stop)
    except RlpError as exc:
        raise MalformedProof(f"bad node encoding: {exc.detail}", check=check, index=index) from None
    if len(items) == _BRANCH:
        if pos == len(key):
            s, e, is_list = items[16]
            if is_list:
                raise MalformedProof("branch value is a list", check=check, index=index)
            if s == e:
                raise _absent(key, "empty branch value", check, index)
            return _VALUE, s, e, pos
        s, e, is_list = items[_NIBBLE[key[pos]]]
        return _child(s, e, is_list, key, check=check, index=index), s, e, pos + 1
    if len(items) != _PAIR:
        raise MalformedProof(f"node has {len(items)} items, not 2 or 17", check=check, index=index)
    path, leaf = _path(data, items[0], check, index)
    s, e, is_list = items[1]
    if leaf:
        if key[pos:] != path:
            raise _absent(key, "leaf for another key", check, index)
        if is_list or s == e:
            raise MalformedProof("leaf value is not a non-empty string", check=check, index=index)
        return _VALUE, s, e, len(key)
    if not key.startswith(path, pos):
        raise _absent(key, "extension diverges from the key", check, index)
    return _child(s, e, is_list, key, check=check, index=index), s, e, pos + len(path)


def _path(data: bytes, item: ItemBounds, check: str, index: int) -> tuple[str, bool]:
    """Decode a hex-prefix path: ``(nibbles as hex digits, is_leaf)``."""
    s, e, is_list = item
    text = data[s:e].hex()
    flag = text[:1]
    if is_list or flag not in ("0", "1", "2", "3") or (flag in ("0", "2") and text[1:2] != "0"):
        raise MalformedProof("bad hex-prefix path", check=check, index=index)
    nibbles = text[1:] if flag in ("1", "3") else text[2:]
    leaf = flag in ("2", "3")
    if not leaf and not nibbles:
        raise MalformedProof("extension with an empty path", check=check, index=index)
    return nibbles, leaf


def _child(s: int, e: int, is_list: bool, key: str, *, check: str, index: int) -> int:
    if is_list:
        if e - s >= HASH_LENGTH - 1:
            raise MalformedProof("embedded node of 32 bytes or more", check=check, index=index)
        return _INLINE
    if e - s == HASH_LENGTH:
        return _HASHED
    if s == e:
        raise _absent(key, "empty child slot", check, index)
    raise MalformedProof(f"child reference of {e - s} bytes", check=check, index=index)


def _absent(key: str, reason: str, check: str, index: int) -> ProofMismatch:
    return ProofMismatch(
        f"proof shows key 0x{key} absent from the trie",
        check=check,
        expected=f"a value for key 0x{key}",
        computed=f"absence ({reason})",
        index=index,
    )


# ----------------------------------------------------------------------------- builder side


def compute_mpt_root(items: Mapping[bytes, bytes], hasher: Hasher = keccak256) -> bytes:
    """The root of the trie holding ``items`` (key -> value, neither secured nor hashed)."""
    pairs = _sorted_pairs(items)
    if not pairs:
        return hasher(_EMPTY)
    return hasher(_node(pairs, 0, len(pairs), 0, _Build(hasher, -1)))


def compute_mpt_proof(
    items: Mapping[bytes, bytes], key: bytes, hasher: Hasher = keccak256
) -> list[bytes]:
    """The geth-format inclusion proof of ``key``: its path's hashed nodes, root first."""
    pairs = _sorted_pairs(items)
    target = bisect_left(pairs, (key.hex(), b""))
    if target == len(pairs) or pairs[target][0] != key.hex():
        raise MalformedEvidence("key is not in the trie", field="key", check="mpt_build")
    build = _Build(hasher, target)
    build.proof.append(_node(pairs, 0, len(pairs), 0, build))
    build.proof.reverse()
    return build.proof


class _Build:
    __slots__ = ("hasher", "proof", "target")

    def __init__(self, hasher: Hasher, target: int) -> None:
        self.hasher = hasher
        self.target = target
        self.proof: list[bytes] = []


def _sorted_pairs(items: Mapping[bytes, bytes]) -> list[tuple[str, bytes]]:
    pairs = []
    for key, value in items.items():
        if not isinstance(key, bytes) or not isinstance(value, bytes) or not value:
            raise MalformedEvidence(
                "trie keys and values must be bytes, values non-empty", check="mpt_build"
            )
        pairs.append((key.hex(), value))
    pairs.sort()
    return pairs


def _node(pairs: list[tuple[str, bytes]], lo: int, hi: int, depth: int, build: _Build) -> bytes:
    """RLP encoding of the node holding ``pairs[lo:hi]``, whose keys agree up to ``depth``."""
    first = pairs[lo][0]
    if hi - lo == 1:
        return encode([_hex_prefix(first[depth:], leaf=True), pairs[lo][1]])
    last = pairs[hi - 1][0]
    shared = depth
    while shared < len(first) and first[shared] == last[shared]:
        shared += 1
    if shared > depth:
        path = encode(_hex_prefix(first[depth:shared], leaf=False))
        return encode_list_of_encoded([path, _ref(pairs, lo, hi, shared, build)])
    value = b""
    if len(first) == depth:  # a key ending here sorts first: it goes in the value slot
        value = pairs[lo][1]
        lo += 1
    parts = []
    for nibble in _NIBBLES:
        end = lo
        while end < hi and pairs[end][0][depth] == nibble:
            end += 1
        parts.append(_ref(pairs, lo, end, depth + 1, build) if end > lo else _EMPTY)
        lo = end
    parts.append(encode(value))
    return encode_list_of_encoded(parts)


def _ref(pairs: list[tuple[str, bytes]], lo: int, hi: int, depth: int, build: _Build) -> bytes:
    """The encoded reference to a child: the node itself under 32 bytes, else its hash."""
    node = _node(pairs, lo, hi, depth, build)
    if len(node) < HASH_LENGTH:
        return node
    if lo <= build.target < hi:
        build.proof.append(node)
    return _HASH_REF + build.hasher(node)


def _hex_prefix(nibbles: str, *, leaf: bool) -> bytes:
    flag = 2 if leaf else 0
    if len(nibbles) % 2:
        return bytes.fromhex(f"{flag + 1:x}{nibbles}")
    return bytes.fromhex(f"{flag:x}0{nibbles}")
