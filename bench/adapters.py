"""Adapter throughput and gateway gas, on Anvil and on the FISCO devnode, in one run.

Run: ``.venv/bin/python -m bench.adapters [--messages 1000]``. Not a timed test; the figures
depend on the machine (2 cores here). For each chain it prints:

- facts observed per second: ``facts()`` from the first block to the final head, on a chain
  holding ``--messages`` sent messages (evidence included: receipts, proofs, headers);
- evidence built + verified per second: the same pass, plus ``verify_bundle`` on every fact's
  bundle (on FISCO one seal's bundle proves up to 100 facts, so it is verified once per seal);
- gas of ``sendMessage``, ``deliverMessages`` with 1, 10 and 100 messages, ``acknowledgeResults``
  (10 results) and ``seal`` (FISCO, 100 sent ids).

The chains are the adapter conformance suite's environments (tests/integration/adapters), so the
benchmark measures exactly what the suite checks.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import structlog

from adapters.base import Fact, FactKind, Submission
from tests.integration.adapters.env import ChainEnv
from tests.integration.adapters.env_evm import evm_env
from tests.integration.adapters.env_fisco import fisco_env
from verifier.evidence import verify_bundle
from verifier.messages import DeliveryResult, Message


async def _settle(env: ChainEnv) -> list[Submission]:
    seals = []
    while (seal := await env.adapter.seal(force=True)) is not None:
        seals.append(seal)
    await env.driver.finalize()
    return seals


async def _read_all(env: ChainEnv, cursor: str) -> tuple[list[Fact], str]:
    facts: list[Fact] = []
    while True:
        page = await env.adapter.facts(cursor, max_blocks=1000)
        facts.extend(page.facts)
        if page.cursor == cursor:
            return facts, cursor
        cursor = page.cursor


async def _send(env: ChainEnv, count: int, deadline: int) -> list[Submission]:
    subs: list[Submission] = []
    for start in range(0, count, 50):
        batch = [
            env.adapter.send_message(env.chain, env.ping_pong, b"bench %d" % i, deadline)
            for i in range(start, min(count, start + 50))
        ]
        subs.extend(sub for _, sub in await asyncio.gather(*batch))
        print(f"  sent {len(subs)}/{count}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return subs


def _verify_all(env: ChainEnv, facts: Sequence[Fact]) -> int:
    seen: set[int] = set()
    verified = 0
    for fact in facts:
        assert fact.evidence is not None
        seal = fact.evidence.seal_number
        if seal is not None and seal in seen:
            continue  # one seal's bundle proves all its entries: verify it once
        if seal is not None:
            seen.add(seal)
        verified += 1
        bundle: dict[str, Any] = copy.deepcopy(fact.evidence.bundle)
        bundle["trust"] = {**bundle["trust"], **env.trust}
        verify_bundle(bundle)
    return verified


async def bench_chain(
    name: str, make: Callable[[], AbstractAsyncContextManager[ChainEnv]], messages: int
) -> dict[str, Any]:
    print(f"{name}: setting up", file=sys.stderr)
    async with make() as env:
        start = env.adapter.initial_cursor((await env.adapter.status()).head)
        deadline = await env.driver.timestamp() + 3600
        sends = await _send(env, messages, deadline)
        seals = await _settle(env)

        t0 = time.perf_counter()
        facts, cursor = await _read_all(env, start)
        observe_s = time.perf_counter() - t0
        sent = [f for f in facts if f.kind is FactKind.MESSAGE_SENT]
        assert len(sent) == messages, f"observed {len(sent)} of {messages}"

        t0 = time.perf_counter()
        fresh = env.new_adapter()
        try:
            again: list[Fact] = []
            c = start
            while True:
                page = await fresh.facts(c, max_blocks=1000)
                again.extend(page.facts)
                if page.cursor == c:
                    break
                c = page.cursor
        finally:
            await fresh.close()
        bundles = _verify_all(env, again)
        evidence_s = time.perf_counter() - t0

        gas: dict[str, int | None] = {"sendMessage": sends[0].gas_used}
        if seals:
            gas["seal (100 sent ids)"] = seals[0].gas_used
        pairs = [(f.id, f.message) for f in sent if f.message is not None]
        used = 0
        for size in (1, 10, 100):
            batch: list[tuple[bytes, Message]] = pairs[used : used + size]
            used += size
            sub = await env.adapter.deliver(batch)
            gas[f"deliverMessages ({size})"] = sub.gas_used
        await _settle(env)
        results, _ = await _read_all(env, cursor)
        delivered: list[DeliveryResult] = [
            f.result for f in results if f.kind is FactKind.DELIVERY_RESULT and f.result
        ]
        sub = await env.adapter.acknowledge(delivered[:10])
        gas["acknowledgeResults (10)"] = sub.gas_used
        return {
            "chain": name,
            "facts": len(facts),
            "observe_per_s": len(facts) / observe_s,
            "evidence_per_s": len(again) / evidence_s,
            "bundles_verified": bundles,
            "gas": gas,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.adapters", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="messages on each chain")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    rows = [
        asyncio.run(bench_chain("anvil", evm_env, args.messages)),
        asyncio.run(bench_chain("fisco devnode", fisco_env, args.messages)),
    ]
    print(f"\nadapters: {args.messages} messages per chain")
    print(f"{'chain':<14} {'facts':>6} {'observed/s':>11} {'built+verified/s':>17} {'bundles':>8}")
    for r in rows:
        print(
            f"{r['chain']:<14} {r['facts']:>6} {r['observe_per_s']:>11.0f} "
            f"{r['evidence_per_s']:>17.0f} {r['bundles_verified']:>8}"
        )
    print("\ngas used (receipt gasUsed)")
    names = list(rows[0]["gas"]) + [k for k in rows[1]["gas"] if k not in rows[0]["gas"]]
    print(f"{'call':<26} " + " ".join(f"{r['chain']:>14}" for r in rows))
    for key in names:
        cells = " ".join(f"{_fmt(r['gas'].get(key)):>14}" for r in rows)
        print(f"{key:<26} {cells}")
    return 0


def _fmt(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


if __name__ == "__main__":
    sys.exit(main())
