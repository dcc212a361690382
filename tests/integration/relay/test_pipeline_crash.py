"""Killed at every named crash point and restarted, the gateway ends with every message
delivered exactly once and acknowledged exactly once, none lost.

The node runs in a subprocess (``pipeline_runner.py``) against the module's Anvil and devnode;
``GATEWAY_CRASH_AT`` makes it exit hard (``os._exit``, like SIGKILL) at the point, then it is
started again on the same data directory and must finish the work. The checks are on chain
(``sent_state``, ``delivery_status``, and one MessageDelivered and one MessageAcknowledged event
per id) and in the store (every row closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.crash import ENV, EXIT_CODE, POINTS
from relay.sqlite_store import SqliteStore
from relay.store import MessageFilter, Role, State
from tests.integration.relay.pipeline_env import Chains, describe, on_chain_counts, two_chains

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(name="chains", scope="module")
async def _chains() -> AsyncIterator[Chains]:
    """Anvil and the devnode with gateways that know each other, shared by the module."""
    async with two_chains() as chains:
        yield chains


async def spawn(config: Path, log: Path, crash_at: str | None) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if crash_at is not None:
        env[ENV] = crash_at
    out = log.open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.relay.pipeline_runner",
            str(config),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    finally:
        out.close()


async def closed(data_dir: Path, ids: list[bytes]) -> bool:
    store = SqliteStore(data_dir)
    await store.open()
    try:
        page = await store.list_messages(MessageFilter(), limit=1000)
    finally:
        await store.close()
    states = {(r.id, r.role): r.state for r in page.items}
    return all(
        states.get((i, Role.SOURCE)) is State.ACKNOWLEDGED
        and states.get((i, Role.DESTINATION)) is State.RESULT_FORWARDED
        for i in ids
    )


@pytest.mark.parametrize("point", POINTS)
async def test_killed_at_a_crash_point_then_restarted(
    point: str, chains: Chains, tmp_path: Path
) -> None:
    """Exit hard at ``point``, restart, and end with each message delivered and acknowledged
    exactly once on chain, every row closed in the store."""
    evm, fisco = chains.evm.chain, chains.fisco.chain
    data = tmp_path / "data"
    d = await describe(chains, data, batch_wait=0.3)
    start = {evm: d["evm"]["start"], fisco: d["fisco"]["start"]}
    config = tmp_path / "node.json"
    config.write_text(json.dumps(d), encoding="utf-8")
    log = tmp_path / "node.log"

    # Sent before the node starts, so that one page and one batch hold several of them.
    ids: dict[bytes, str] = {}
    for src, dst in ((evm, fisco), (fisco, evm)):
        now = (await chains.envs[dst].adapter.status()).timestamp
        for i in range(2):
            mid, _ = await chains.envs[src].adapter.send_message(
                dst, chains.echo[dst], f"{point} {i}".encode(), now + 3600
            )
            ids[mid] = src

    proc = await spawn(config, log, point)
    try:
        rc = await asyncio.wait_for(proc.wait(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"the node never reached {point}") from None
    assert rc == EXIT_CODE, f"exit status {rc}, see {log}"

    proc = await spawn(config, log, None)
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + 60
        while not await closed(data, list(ids)):
            assert proc.returncode is None, f"the restarted node exited, see {log}"
            assert loop.time() < end, f"not every message closed after restart, see {log}"
            await asyncio.sleep(0.3)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    for mid, src in ids.items():
        dst = fisco if src == evm else evm
        assert await chains.envs[src].adapter.sent_state(mid) == 2
        assert await chains.envs[dst].adapter.delivery_status(mid) is not None
    counts = await on_chain_counts(chains, start)
    for mid in ids:
        assert counts["delivered"].get(mid) == 1, f"{mid.hex()} delivered {counts['delivered']}"
        assert counts["acknowledged"].get(mid) == 1, mid.hex()
