"""Fixtures: one in-process devnode per module on 127.0.0.1 (free port, short block interval)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devnet.fisco.node import DevNode, DevNodeOptions, DevNodeThread
from tests.integration.devnet.client import RpcClient

TEST_SEED = "integration-tests"


@pytest.fixture(name="node", scope="module")
def _node() -> Iterator[DevNode]:
    """A running devnode (4 sealers, 20 ms blocks, memory store) shared by one test module."""
    with DevNodeThread(DevNodeOptions(port=0, block_interval_ms=20, seed=TEST_SEED)) as node:
        yield node


@pytest.fixture(name="client", scope="module")
def _client(node: DevNode) -> RpcClient:
    """A JSON-RPC client for the module's devnode."""
    return RpcClient(node.url)


@pytest.fixture(name="store_address", scope="module")
def _store_address(client: RpcClient) -> str:
    """The address of a freshly deployed Store contract."""
    return client.deploy("Store")
