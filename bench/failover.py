"""Failover time: two replicas of gateway ``evm`` on PostgreSQL (one active), ``fisco`` single,
the active replica SIGKILLed ``--kills`` times (10 by default).

Per kill: *takeover* is kill -> the standby holds the lease (polled in the database every
50 ms); *first delivery* is kill -> the standby delivered a message the peer sent at the moment
of the kill (its destination row reaches ``delivered`` in the history, by the gateway's clock:
the delivery is on chain and observed). The killed replica is restarted (as the new standby)
before the next kill. Prints each kill and min/median/max.

Run: ``.venv/bin/python -m bench.failover [--kills 10]``. Needs PostgreSQL at 127.0.0.1:5432
(trust auth, as the tests); not a timed test: figures depend on the machine and on
``lease_seconds`` (3 s here, renewed every second; the relay's retry_max is 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from devnet.demo import EVM_CHAIN, FISCO_CHAIN
from tests.e2e.test_failover import (
    LEASE_SECONDS,
    Replicated,
    create_database,
    drop_database,
    replicated_cluster,
)

DB_NAME = f"gateway_failover_bench_{os.getpid()}"


def _delivered_at(url: str, mid: bytes) -> float | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT min(at) FROM history WHERE id=%s AND role='destination' AND state='delivered'",
            (mid,),
        ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


async def _one_kill(env: Replicated, n: int) -> tuple[float, float]:
    active, standby = await env.both_running()
    echo = env.cluster.contracts[EVM_CHAIN].extra["EchoReceiver"]
    env.children[active].kill()
    killed_wall, killed = time.time(), time.monotonic()
    mid = await env.apis["fisco"].send(FISCO_CHAIN, EVM_CHAIN, echo, f"kill {n}".encode(), 3600)
    takeover = await env.takeover(standby, killed)
    deadline = time.monotonic() + 60
    while (at := _delivered_at(env.url, mid)) is None:
        env.alive(standby)
        if time.monotonic() > deadline:
            raise RuntimeError(f"kill {n}: 0x{mid.hex()} not delivered within 60 s")
        await asyncio.sleep(0.1)
    return takeover, at - killed_wall


def _summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<16} min {min(values):6.2f} s   median {statistics.median(values):6.2f} s   "
        f"max {max(values):6.2f} s"
    )


async def _run(kills: int) -> int:
    try:
        url = create_database(DB_NAME)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {exc}", file=sys.stderr)
        return 2
    try:
        root = Path(tempfile.mkdtemp(prefix="bench-failover-"))
        async with replicated_cluster(root, url) as env:
            takeovers: list[float] = []
            deliveries: list[float] = []
            for n in range(1, kills + 1):
                takeover, delivery = await _one_kill(env, n)
                takeovers.append(takeover)
                deliveries.append(delivery)
                print(f"kill {n:2}: takeover {takeover:5.2f} s, first delivery {delivery:5.2f} s")
    finally:
        drop_database(DB_NAME)
    print(f"failover over {kills} kills (lease_seconds = {LEASE_SECONDS:g}, renewal every 1 s)")
    print(_summary("takeover", takeovers))
    print(_summary("first delivery", deliveries))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs of the active replica")
    args = parser.parse_args()
    return asyncio.run(_run(args.kills))


if __name__ == "__main__":
    sys.exit(main())
