"""What gateways say to each other, independent of the transport.

The source gateway *forwards* a message it has verified (body + evidence); the destination
gateway *acknowledges* a delivery result back (result + evidence). Each side re-verifies against
its own trust roots, so nothing here is believed: an item is a claim with its proof. The gRPC
``RelayService`` (``relay/grpc``) and the in-process link of a gateway that serves both chains of
a route carry exactly these values, so the pipeline never knows which one it talks to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from verifier.messages import DeliveryResult, Message


@dataclass(frozen=True, slots=True)
class ForwardItem:
    """A message the source gateway verified, with the evidence that its id was sent."""

    id: bytes
    message: Message
    bundle: Mapping[str, Any]
    """``interop-evidence/1`` as the source adapter built it; the receiver replaces ``trust``."""
    endpoint: str = ""
    """Where the source read it (informational, for the receiver's records)."""


@dataclass(frozen=True, slots=True)
class AckItem:
    """A delivery result the destination gateway observed, with the evidence that it was made."""

    id: bytes
    result: DeliveryResult
    bundle: Mapping[str, Any]
    endpoint: str = ""


class VerdictKind(StrEnum):
    ACCEPTED = "accepted"
    """Verified and persisted (or already known): the sender may stop resending."""
    REJECTED = "rejected"
    """This attempt's evidence failed verification: a verdict on the attempt, not on the id."""
    RETRY = "retry"
    """Not yet: a trust root not yet final, a chain unreachable, the receiver overloaded."""


@dataclass(frozen=True, slots=True)
class Verdict:
    id: bytes
    kind: VerdictKind
    reason: str = ""
    check: str = ""
    """The failed check's name when rejected (the verifier's, or the relay's own)."""


class PeerLink(Protocol):
    """The way to the gateway that serves a remote chain."""

    name: str

    async def forward(self, items: Sequence[ForwardItem]) -> Sequence[Verdict]:
        """One verdict per item, in order. Raises an ``adapters.base.AdapterError``-like
        retryable error (``relay.links.LinkUnavailable``) when the peer cannot be reached."""
        ...

    async def acknowledge(self, items: Sequence[AckItem]) -> Sequence[Verdict]: ...


class InboundHandler(Protocol):
    """What a gateway does with items a peer sends it (the ``RelayService`` servicer calls it)."""

    async def handle_forward(self, peer: str, items: Sequence[ForwardItem]) -> Sequence[Verdict]:
        """``peer`` is the authenticated peer's configured name; it may forward only messages
        whose ``src_chain`` it is configured to serve, and only to chains this gateway serves."""
        ...

    async def handle_acknowledge(self, peer: str, items: Sequence[AckItem]) -> Sequence[Verdict]:
        """Results for messages this gateway forwarded; ``peer`` must serve their ``dst_chain``."""
        ...


class LinkUnavailable(Exception):
    """The peer could not be reached or did not answer in time: retry later."""

    retryable = True

    def __init__(self, message: str, *, peer: str) -> None:
        super().__init__(f"{message} (peer {peer})")
        self.peer = peer
