"""Typed failures of the FISCO BCOS client-side codecs (TARS, transaction building).

None of them is retryable: the same bytes or fields fail the same way every time. Each keeps its
details as attributes (``offset``, ``field``) and a readable sentence as its message.
"""

from __future__ import annotations

from verifier.errors import GatewayError


class FiscoCodecError(GatewayError, ValueError):
    """Root of the FISCO encoding errors; also a ``ValueError`` for generic callers."""


class TarsDecodeError(FiscoCodecError):
    """Bytes that are not a well-formed TARS encoding of the expected structure."""

    def __init__(self, message: str, *, offset: int) -> None:
        super().__init__(f"TARS decode failed at byte {offset}: {message}")
        self.offset = offset
        self.reason = message


class TarsEncodeError(FiscoCodecError):
    """A value that TARS cannot represent (a tag outside 0..255, an integer beyond int64)."""

    def __init__(self, message: str, *, tag: int) -> None:
        super().__init__(f"TARS encode failed for tag {tag}: {message}")
        self.tag = tag
        self.reason = message


class TransactionFieldError(FiscoCodecError):
    """A transaction field the node would reject, or one the signed hash would not cover."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message
