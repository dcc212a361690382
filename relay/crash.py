"""Named crash points: the process exits hard at a named stage when told to.

``GATEWAY_CRASH_AT=before_submit`` makes the first pass through ``crash_point("before_submit")``
end the process with ``os._exit`` (no cleanup, no flush: what SIGKILL or a power cut leaves);
``before_submit:3`` waits for the third pass. The tests kill the gateway at each point, restart
it, and check that every message is still delivered and acknowledged exactly once.

Known limit: ``after_submit_before_receipt`` and ``after_receipt_before_persist`` (and
``after_ack_submit_before_receipt``) fire at the same place, after ``ChainAdapter.deliver`` /
``acknowledge`` returned: the adapters send the transaction and wait for its receipt inside one
call, so there is no point between the two from the pipeline's side. Both crash with the
transaction mined and nothing persisted, which is the harder case (a crash before the receipt
leaves either that or a transaction never mined, which a restart resubmits the same way).
Telling them apart needs an ``on_sent`` hook in the adapters' interface (``adapters/base.py``).
"""

from __future__ import annotations

import os
import sys
from typing import Final

ENV: Final = "GATEWAY_CRASH_AT"
EXIT_CODE: Final = 97
"""The exit status of a crash point, so a test tells it apart from any other failure."""

POINTS: Final = (
    "after_observe",
    "after_verify",
    "after_forward_before_reply",
    "after_accept_before_reply",
    "before_submit",
    "after_submit_before_receipt",
    "after_receipt_before_persist",
    "after_result_forward_before_reply",
    "before_ack_submit",
    "after_ack_submit_before_receipt",
    "mid_batch_persist",
)

_passes: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    name, _, count = spec.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}={spec!r}: unknown crash point (known: {', '.join(POINTS)})")
    return name, int(count) if count else 1


def check_environment() -> None:
    """Fail at start-up on a misspelt crash point instead of never crashing."""
    _target()


def crash_point(name: str) -> None:
    """Exit the process at once if ``GATEWAY_CRASH_AT`` names this point (and pass count)."""
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}")
    target = _target()
    if target is None or target[0] != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= target[1]:
        sys.stderr.write(f"crash point {name} reached: exiting\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
