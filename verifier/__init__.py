"""Pure evidence checks: hashing, RLP/MPT, FISCO Merkle, signatures, quorum, evidence bundles.

Nothing in this package does I/O, logging or reads a clock. Every check either returns a
value or raises a :class:`verifier.errors.VerificationError` that names the failed check.
"""
