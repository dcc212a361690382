"""docs/examples/ is what devnet.examples builds: the shipped bundles are our own data."""

from __future__ import annotations

import json
from pathlib import Path

from devnet.examples import DEFAULT_OUT, build_examples
from verifier.evidence import verify_bundle


def _strip_signatures(doc: dict[str, object]) -> dict[str, object]:
    block, tx = doc["block"], doc["transaction"]
    assert isinstance(block, dict)
    assert isinstance(tx, dict)
    return doc | {
        "block": {k: v for k, v in block.items() if k != "signatureList"},
        "transaction": {k: v for k, v in tx.items() if k != "signature"},
    }


def test_shipped_examples_match_the_generator() -> None:
    """Regenerating gives the committed files (SM2 signatures are randomised, so not those)."""
    built = build_examples()
    shipped = {
        p.name: json.loads(p.read_text(encoding="utf-8")) for p in Path(DEFAULT_OUT).glob("*.json")
    }
    assert set(shipped) == set(built)
    for name, doc in built.items():
        if doc["crypto"] == "sm3-sm2":
            assert _strip_signatures(shipped[name]) == _strip_signatures(doc), name
        else:
            assert shipped[name] == doc, name


def test_generated_examples_verify() -> None:
    """Freshly generated bundles verify, including fresh SM2 signatures."""
    for doc in build_examples().values():
        assert verify_bundle(doc).log is not None
