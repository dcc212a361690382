"""Resource bounds on hostile evidence, each checked before the work it bounds.

Anyone can hand the verifier a bundle: ``gateway verify`` reads the trust root from the bundle
itself, so an attacker can build a fully *valid* bundle of any shape. Every bound below is
therefore sized so that any input within all of them is accepted or rejected in well under a
second and 200 MB on a 2-core machine, and with a wide margin over real evidence (the sizes
compared with are in ``docs/limits.md``). A bound is checked with a cheap length test before
the expensive step (parsing, hex decoding, encoding, hashing, signature verification) and
fails with :func:`check_count`'s typed error, check :data:`LIMIT_CHECK`, naming the field.
"""

from __future__ import annotations

from typing import Final

from verifier.errors import MalformedEvidence

LIMIT_CHECK: Final = "limit"
"""The ``check`` of every error raised for exceeding one of these bounds."""

MAX_BUNDLE_BYTES: Final = 16 * 1024 * 1024
"""16 MiB of JSON text per bundle.

Real bundles are 5-7 KB (``docs/examples``); the largest mainnet receipt in the shared vectors
is 5,981 bytes of RLP (about 15 KB as JSON). The bound is set by the other bounds instead: a
receipt at :data:`MAX_LOGS_PER_RECEIPT` with 4 topics a log and every field the RPC prints is
a 10.5 MB bundle, and 16 MiB still carries about 4 MB of log data, which appears twice as hex
(the receipt and the proof's leaf). Every cost not bounded by a count scales with this number:
the linear JSON pre-scan, hex decoding and hashing of the largest values.
"""

MAX_DECODED_TEXT_BYTES: Final = 2 * MAX_BUNDLE_BYTES
"""Memory of the bundle's decoded text (Python stores 1, 2 or 4 bytes a character, by its
widest character). ASCII and BMP text (Chinese included) always fit; only a text holding a
character beyond the BMP (an emoji) and more than 8 Mi characters does not, since it would take
4 bytes a character, once for the text and once more for the strings parsed from it."""

MAX_JSON_DEPTH: Final = 64
"""Nesting depth of the JSON document. A bundle nests 5 deep (bundle, receipt, logs, log,
topics); 64 leaves room for unknown extra fields and keeps ``json.loads``, which recurses on
the C stack once per level, far from any stack limit whatever the recursion limit is."""

MAX_JSON_VALUES: Final = 400_000
"""JSON values in the document, object keys included, counted before ``json.loads`` builds any.

Counted with ``bytes.count`` over the whole UTF-8 text, strings included: the commas,
colons and opening brackets plus one (every value or key but the first follows one of them),
and, separately, the strings as pairs of quote characters. Both over-count only for structural
characters or escaped quotes inside strings, which chain data (hex and decimal text) does not
have. A log in an ``eth_getTransactionReceipt`` receipt takes about 25 (an object, 10 keys and
values, 4 topics), so a receipt at :data:`MAX_LOGS_PER_RECEIPT` takes about 250,000; a real
bundle takes a few hundred. 400,000 parsed values take at most about 20 MB.
"""

MAX_JSON_INT_DIGITS: Final = 80
"""Digits of a JSON integer. Bundle integers are 64-bit (block numbers, timestamps, weights:
at most 20 digits); 80 admits any uint256 (78 digits). The bound keeps integer parsing linear
even if some library lifts the interpreter's own 4,300-digit limit."""

MAX_LOGS_PER_RECEIPT: Final = 10_000
"""Logs in one receipt (EVM ``logs``, FISCO ``logEntries``).

The shared vectors' busiest receipts hold 30 logs. An ERC-20 batch transfer pays about 8,000 to
25,000 gas per Transfer log, so a 36M-gas block fits at most about 4,500 of them; 10,000 leaves
room for cheaper emitters while keeping re-encoding and hashing a receipt near 0.1 s. Only
receipts that spend their gas on empty logs for nothing can exceed it.
"""

MAX_TOPICS_PER_LOG: Final = 4
"""Topics in one log: the EVM has LOG0 to LOG4 and no other log opcode, and FISCO BCOS 3.x runs
the same EVM (evmone), so a fifth topic cannot come from a real chain."""

MAX_LOG_DATA_BYTES: Final = 1024 * 1024
"""Bytes of ``data`` in one log (1 MiB, 2 MiB of hex). The largest log data in the shared
vectors is 1,824 bytes; log data costs 8 gas per byte (1 MiB: 8.4M gas), and a message payload
usually arrives as calldata, which geth's txpool caps at 128 KiB per transaction."""

MAX_SEALERS: Final = 256
"""Sealers in a FISCO header's ``sealerList`` / ``consensusWeights`` and in the trusted sealer
set. FISCO BCOS deployments run 4 (the default and every vector here) to a few dozen consensus
nodes; PBFT's all-to-all messages make hundreds impractical. 256 SM2 verifications take about
0.1 s (0.41 ms each on the reference machine)."""

MAX_SIGNATURES_PER_HEADER: Final = MAX_SEALERS
"""Entries in a FISCO header's ``signatureList``: a valid list has at most one per sealer."""

MAX_PARENT_INFO: Final = 16
"""Entries in a FISCO header's ``parentInfo``: FISCO BCOS 3.x writes exactly one (none for
genesis)."""

MAX_PROOF_ITEMS: Final = 256
"""Items in a bundle's ``proof`` (and a FISCO ``txProof``), checked on the envelope. A FISCO
proof takes at most 3 items per tree level: 97 for a block of 2**32 receipts, and 192 at the
binary Merkle walker's own 64-level bound. EVM proofs are further bounded by
:data:`MAX_MPT_PROOF_NODES`."""

MAX_MPT_PROOF_NODES: Final = 16
"""Nodes in an Ethereum Merkle-Patricia proof. A receipt key below index 65,536 has at most 6
nibbles, so its path holds at most 7 hashed nodes (the vectors' proofs hold 3 to 6); state and
storage paths take 8 to 10 in practice."""


def check_count(count: int, bound: int, *, field: str, what: str) -> None:
    """Raise MalformedEvidence (check ``limit``) when ``count`` exceeds ``bound``."""
    if count > bound:
        raise MalformedEvidence(
            f"{count} {what}, more than the limit of {bound}", check=LIMIT_CHECK, field=field
        )
