"""A gateway node process for the crash-point tests: ``python -m
tests.integration.relay.pipeline_runner NODE.json`` builds the node that
``pipeline_env.describe`` wrote, runs it until SIGTERM (then drains and stops), and exits hard
wherever ``GATEWAY_CRASH_AT`` says."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from tests.integration.relay.pipeline_env import build_node


async def main(path: str) -> None:
    node = build_node(json.loads(Path(path).read_text(encoding="utf-8")))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await node.start()
    try:
        await stop.wait()
    finally:
        await node.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
