"""The in-process link: a gateway that serves both chains of a route forwards to itself.

It carries the same items as the gRPC link, and the receiving side treats them the same way
(verified again, against the same trust roots, persisted as the destination row), so the
pipeline never knows which link it uses. The peer is named ``local``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from relay.links import AckItem, ForwardItem, InboundHandler, Verdict

LOCAL_PEER: Final = "local"


class LocalLink:
    def __init__(self, handler: InboundHandler, name: str = LOCAL_PEER) -> None:
        self.name = name
        self._handler = handler

    async def forward(self, items: Sequence[ForwardItem]) -> Sequence[Verdict]:
        return await self._handler.handle_forward(self.name, items)

    async def acknowledge(self, items: Sequence[AckItem]) -> Sequence[Verdict]:
        return await self._handler.handle_acknowledge(self.name, items)
