"""The one retry policy: what each error means, and the backoff's bounds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from adapters.base import (
    ChainTimeout,
    ChainUnavailable,
    ConfigurationError,
    NotFound,
    RejectedByChain,
    UnexpectedResponse,
)
from relay.links import LinkUnavailable
from relay.retry import Decision, RetryPolicy, StuckReporter, classify, describe
from relay.sqlite_store import SqliteStore
from relay.store import NEVER, Role, State, StoreError, Transition
from relay.trust import EvidenceRejected, NotYetTrusted
from verifier.messages import Message


@pytest.mark.parametrize(
    ("exc", "decision"),
    [
        (EvidenceRejected("bad proof", check="receipt_proof"), Decision.REJECT),
        (NotYetTrusted("not final", chain="a"), Decision.RETRY),
        (LinkUnavailable("refused", peer="p"), Decision.RETRY),
        (ChainUnavailable("refused", chain="a"), Decision.RETRY),
        (ChainTimeout("slow", chain="a"), Decision.RETRY),
        (NotFound("no receipt yet", chain="a"), Decision.RETRY),
        (UnexpectedResponse("garbage", chain="a"), Decision.RETRY),
        (StoreError("disk busy"), Decision.RETRY),
        (TimeoutError(), Decision.RETRY),
        (RejectedByChain("reverted", chain="a"), Decision.STOP),
        (ConfigurationError("wrong chain id", chain="a"), Decision.STOP),
        (KeyError("a bug"), Decision.STOP),
    ],
)
def test_every_error_has_one_decision(exc: BaseException, decision: Decision) -> None:
    """Rejections are terminal for the attempt, transient errors retry, the rest stop."""
    assert classify(exc) is decision


def test_own_chain_evidence_failures_are_retried_never_rejections() -> None:
    """Requirement 13: a check that fails on a fact read from a served chain (a lying or
    lagging endpoint, check "height" included) is retried; a peer's bundle is rejected."""
    for check in ("receipt_proof", "height", "message_id"):
        exc = EvidenceRejected("x", check=check)
        assert classify(exc, own_chain=True) is Decision.RETRY
        assert classify(exc) is Decision.REJECT
        outcome = RetryPolicy(1.0, 2.0).outcome(exc, 1, 100.0, own_chain=True)
        assert outcome.next_try_at <= 101.0
    assert classify(RejectedByChain("x", chain="a"), own_chain=True) is Decision.STOP


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    """Each delay is 50-100 % of min(maximum, initial * 2^(attempt-1))."""
    policy = RetryPolicy(initial=0.5, maximum=8.0, rng=random.Random(7))
    for attempt in range(1, 40):
        base = min(8.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(20):
            assert base / 2 <= policy.delay(attempt) <= base
    spread = {round(policy.delay(3), 6) for _ in range(20)}
    assert len(spread) > 1, "jitter spreads retries"


def test_outcome_never_retries_a_stop_or_a_rejection() -> None:
    """Only RETRY gets a next try; the others are parked at NEVER (visible as stuck)."""
    policy = RetryPolicy(initial=1.0, maximum=2.0)
    retry = policy.outcome(ChainUnavailable("x", chain="a"), 1, 100.0)
    assert 100.5 <= retry.next_try_at <= 101.0
    assert policy.outcome(RejectedByChain("x", chain="a"), 1, 100.0).next_try_at == NEVER
    assert policy.outcome(EvidenceRejected("x", check="c"), 1, 100.0).next_try_at == NEVER
    assert describe(RejectedByChain("reverted", chain="a")).startswith("RejectedByChain: ")


async def test_the_stuck_reporter_warns_once_per_stuck_state(tmp_path: Path) -> None:
    """A message not progressing is logged as stuck with its age, stage, attempts and error."""
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        m = Message("chain-a", b"\x01" * 20, "chain-b", 1, b"\x02" * 20, b"\x03" * 20, b"", 9)
        mid = b"\x07" * 32
        await store.transition(
            Transition(mid, Role.SOURCE, State.VERIFIED, None, at=100.0, message=m)
        )
        await store.record_attempt(
            mid, Role.SOURCE, state=State.VERIFIED, error="peer down", next_try_at=0, at=150
        )
        reporter = StuckReporter(store, stuck_after=60)
        with capture_logs() as logs:
            assert await reporter.report(120.0) == 0
            assert await reporter.report(200.0) == 1
            assert await reporter.report(210.0) == 1
        [event] = [e for e in logs if e["event"] == "message_stuck"]
        assert event["log_level"] == "warning"
        assert (event["stage"], event["attempts"], event["reason"]) == ("verified", 1, "peer down")
        assert event["age_s"] == 100.0
    finally:
        await store.close()
