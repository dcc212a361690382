"""A structure-aware mutator for evidence bundles: perturb JSON values, then (often) re-seal.

Raw byte flips of a bundle almost never get past the JSON parser and the header hash. This
mutator parses the input, changes one value where it matters (a hex string, an integer, a list
length, a key, a whole subtree copied from elsewhere), and then may *re-seal* the bundle as an
attacker can, since ``gateway verify`` takes the trust root from the bundle: recompute the
receipt's proof and root, the header hash and the trusted hash (EVM), or re-sign the header with
the seed sealers' keys (FISCO). That way mutated receipts, logs and transactions reach the deep
checks and the accept path. Anything the mutator cannot handle falls back to ``fallback``
(libFuzzer's own byte mutator).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from functools import cache
from typing import Any

from tests.fuzz.bundles import hex0x, sealer_secrets
from verifier.evm.header import compute_block_hash
from verifier.evm.receipt import encode_receipt, receipt_key
from verifier.fisco.header import compute_header_hash
from verifier.fisco.receipt import compute_receipt_hash
from verifier.fisco.transaction import compute_transaction_hash
from verifier.hashing import CryptoSuite, hasher_for
from verifier.merkle.mpt import compute_mpt_proof, compute_mpt_root
from verifier.signatures import secp256k1, sm2

Fallback = Callable[[bytes, int], bytes]
Path = list[str | int]

_INTERESTING_INTS = (0, 1, -1, 2, 31, 32, 33, 255, 256, 2**31, 2**32, 2**63 - 1, 2**63, 2**64)
_HEX_DIGITS = "0123456789abcdef"
_ABI_TYPES = (
    "uint256[]", "bytes", "string", "tuple", "(uint256[],bytes)", "bytes32[4]", "int8",
    "address", "bool", "uint256[2][]", "string[]", "(string,uint64)[]", "fixed128x18",
)  # fmt: skip


def mutate(data: bytes, max_size: int, seed: int, fallback: Fallback) -> bytes:
    """One mutation of ``data`` (at most ``max_size`` bytes)."""
    rng = random.Random(seed)
    if rng.random() < 0.2:
        return fallback(data, max_size)
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return fallback(data, max_size)
    try:
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            document = _mutate_once(document, rng)
        if isinstance(document, dict) and rng.random() < 0.6:
            reseal(document)
        out = json.dumps(document, separators=(",", ":") if rng.random() < 0.8 else None)
    except Exception:
        return fallback(data, max_size)
    raw = out.encode("utf-8", "surrogatepass")
    return raw if len(raw) <= max_size else fallback(data, max_size)


def _mutate_once(document: Any, rng: random.Random) -> Any:
    paths = list(_paths(document, []))
    path = rng.choice(paths)
    value = _get(document, path)
    new = _mutated_value(value, document, paths, rng)
    return _set(document, path, new)


def _paths(node: Any, path: Path) -> Any:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, [*path, key])
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, [*path, i])


def _get(node: Any, path: Path) -> Any:
    for step in path:
        node = node[step]
    return node


def _set(document: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    _get(document, path[:-1])[path[-1]] = value
    return document


def _mutated_value(value: Any, document: Any, paths: list[Path], rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.08:  # splice a subtree from elsewhere in the bundle
        return json.loads(json.dumps(_get(document, rng.choice(paths))))
    if roll < 0.14:
        return rng.choice(_other_values(rng))
    if isinstance(value, bool) or value is None:
        return rng.choice(_other_values(rng))
    if isinstance(value, int):
        return rng.choice(
            (value + 1, value - 1, -value, value * 2**32, rng.choice(_INTERESTING_INTS), str(value))
        )
    if isinstance(value, float):
        return rng.choice((int(value), 1e308, -0.0, 0.5))
    if isinstance(value, str):
        return _mutated_text(value, rng)
    if isinstance(value, list):
        return _mutated_list(value, rng)
    if isinstance(value, dict):
        return _mutated_object(value, document, paths, rng)
    return value


def _other_values(rng: random.Random) -> list[Any]:
    return [None, True, False, 0, -1, 2**64, 2**256, 1.5, "", "0x", "0x0", [], {}, "x" * 64,
            "0x" + "00" * rng.choice((1, 20, 31, 32, 33, 64, 65, 256)), [{}], {"": []}]  # fmt: skip


def _mutated_text(text: str, rng: random.Random) -> str:
    prefix = "0x" if text[:2] in ("0x", "0X") else ""
    body = text[len(prefix) :]
    choice = rng.randrange(13)
    if choice == 0 and body:  # flip one digit
        i = rng.randrange(len(body))
        return (
            prefix + body[:i] + rng.choice(_HEX_DIGITS.replace(body[i].lower(), "")) + body[i + 1 :]
        )
    if choice == 1:
        return body if prefix else "0x" + body
    if choice == 2:
        return prefix + body[: rng.randrange(len(body) + 1)]
    if choice == 3:
        return prefix + body + rng.choice(("0", "00", "ff" * 32, body))
    if choice == 4:
        return text.upper() if rng.random() < 0.5 else prefix + body.upper()
    if choice == 5:
        return prefix + "0" + body
    if choice == 6:
        return rng.choice(("0", "1", "0x00", "-1", "1e3", " 0x1", "0x1 ", "\u0660", "\ud800"))
    if choice == 7 and body:
        i = rng.randrange(len(body))
        return (
            text[: len(prefix) + i] + rng.choice(('"', "\\", "\n", "\u00e9", "[", "{")) + body[i:]
        )
    if choice == 8:
        return prefix + body * rng.choice((2, 3, 16))
    if choice == 9 and body.isdigit():
        return str(int(body) + rng.choice((1, -1, 10**20)))
    if choice == 10:
        return prefix + body[::-1]
    if choice == 11:
        return rng.choice(_ABI_TYPES)
    return ""


def _mutated_list(items: list[Any], rng: random.Random) -> list[Any]:
    items = list(items)
    choice = rng.randrange(7)
    if choice == 0 and items:
        del items[rng.randrange(len(items))]
    elif choice == 1 and items:
        items.insert(rng.randrange(len(items) + 1), json.loads(json.dumps(rng.choice(items))))
    elif choice == 2 and len(items) > 1:
        i, j = rng.sample(range(len(items)), 2)
        items[i], items[j] = items[j], items[i]
    elif choice == 3 and items:
        items = items * rng.choice((2, 3))
    elif choice == 4:
        items.append(rng.choice(_other_values(rng)))
    elif choice == 5:
        items = items[: rng.randrange(len(items) + 1)]
    else:
        items.reverse()
    return items


def _mutated_object(
    obj: dict[str, Any], document: Any, paths: list[Path], rng: random.Random
) -> dict[str, Any]:
    obj = dict(obj)
    choice = rng.randrange(5)
    keys = list(obj)
    if choice == 0 and keys:
        del obj[rng.choice(keys)]
    elif choice == 1 and keys:
        key = rng.choice(keys)
        obj[key.upper() if rng.random() < 0.5 else key + "_"] = obj.pop(key)
    elif choice == 2:
        names = [p[-1] for p in paths if p and isinstance(p[-1], str)]
        if names:
            obj[rng.choice(names)] = rng.choice(_other_values(rng))
    elif choice == 3 and keys:
        obj[rng.choice(keys)] = json.loads(json.dumps(_get(document, rng.choice(paths))))
    else:
        obj["extra"] = rng.choice(_other_values(rng))
    return obj


# ------------------------------------------------------------------------------------ re-seal


def reseal(bundle: dict[str, Any]) -> None:
    """Make the bundle's proofs, header hash and trust consistent again, where possible."""
    if bundle.get("family") == "evm":
        _reseal_evm(bundle)
    elif bundle.get("family") == "fisco-bcos-3":
        _reseal_fisco(bundle)


def _reseal_evm(bundle: dict[str, Any]) -> None:
    receipt, block = bundle.get("receipt"), bundle.get("block")
    if not isinstance(receipt, dict) or not isinstance(block, dict):
        return
    try:
        key = receipt_key(int(receipt["transactionIndex"], 16))
        items = {key: encode_receipt(receipt)}
        block["receiptsRoot"] = hex0x(compute_mpt_root(items))
        bundle["proof"] = [hex0x(n) for n in compute_mpt_proof(items, key)]
    except Exception:
        pass
    try:
        block_hash = hex0x(compute_block_hash(block))
    except Exception:
        return
    block["hash"] = block_hash
    if "blockHash" in receipt:
        receipt["blockHash"] = block_hash
    if isinstance(bundle.get("trust"), dict):
        bundle["trust"]["block_hash"] = block_hash


def _reseal_fisco(bundle: dict[str, Any]) -> None:
    receipt, block = bundle.get("receipt"), bundle.get("block")
    if not isinstance(receipt, dict) or not isinstance(block, dict):
        return
    try:
        suite = CryptoSuite(bundle["crypto"])
    except (KeyError, ValueError, TypeError):
        return
    hasher = hasher_for(suite.hash_scheme)
    try:  # a one-receipt block: the receipt hash is the root and its own proof
        receipt_hash = hex0x(compute_receipt_hash(receipt, hasher))
        receipt["hash"] = receipt_hash
        block["receiptsRoot"] = receipt_hash
        bundle["proof"] = [receipt_hash[2:]]
    except Exception:
        pass
    tx = bundle.get("transaction")
    if isinstance(tx, dict):
        try:
            tx_hash = hex0x(compute_transaction_hash(tx, hasher, nonce_encoding="hex"))
            tx["hash"] = tx_hash
            tx["txProof"] = [tx_hash[2:]]
            block["txsRoot"] = tx_hash
            receipt["transactionHash"] = tx_hash
        except Exception:
            pass
    try:
        digest = compute_header_hash(block, hasher)
    except Exception:
        return
    block["hash"] = hex0x(digest)
    _resign(block, digest, suite)


def _resign(block: dict[str, Any], digest: bytes, suite: CryptoSuite) -> None:
    secrets = _known_secrets(suite)
    sealers = block.get("sealerList")
    signatures = block.get("signatureList")
    if not isinstance(sealers, list) or not isinstance(signatures, list):
        return
    sign = sm2.sign if suite is CryptoSuite.SM3_SM2 else secp256k1.sign
    for entry in signatures:
        try:
            secret = secrets[sealers[entry["sealerIndex"]].lower().removeprefix("0x")]
        except (KeyError, IndexError, TypeError, AttributeError):
            continue
        entry["signature"] = hex0x(sign(secret, digest))


@cache
def _known_secrets(suite: CryptoSuite) -> dict[str, bytes]:
    """node id (hex) -> private key, for the sealers of every seed bundle."""
    import hashlib  # noqa: PLC0415 - only the examples' key derivation needs it

    secrets = sealer_secrets(8)
    for chain in ("fisco-demo", "fisco-sm-demo"):  # devnet.examples
        seed = b"interop-gateway examples v1"
        secrets += [
            hashlib.sha256(seed + f"{chain}-sealer-{i}".encode()).digest() for i in range(4)
        ]
    pub = sm2.public_key if suite is CryptoSuite.SM3_SM2 else secp256k1.public_key
    return {pub(s).hex(): s for s in secrets}
