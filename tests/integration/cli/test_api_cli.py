"""The developer CLI (``gateway send``, ``status``, ``watch``, ``messages``) as subprocesses
against a real gateway (``run_gateway`` in this event loop, serving Anvil and the devnode),
over TLS with the token from the environment; exit codes 0, 1 and 2 as documented."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protos.interop.v1 import interop_pb2, interop_pb2_grpc
from tests.integration.grpc.test_interop_api import Gateway, gateway_running, wait_for_state
from tests.integration.relay.pipeline_env import two_chains

pytestmark = pytest.mark.integration

GATEWAY = str(Path(sys.executable).parent / "gateway")


@pytest.fixture(scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    folder = tmp_path_factory.mktemp("cli") / "gw"
    async with two_chains() as chains, gateway_running(chains, folder) as running:
        yield running


def env_for(gw: Gateway, token: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_TOKEN"}
    env |= {"GATEWAY_ADDRESS": gw.api_listen, "GATEWAY_CA": str(gw.ca)}
    if token is not None:
        env["GATEWAY_TOKEN"] = token
    return env


async def cli(gw: Gateway, *args: str, token: str | None = "") -> tuple[int, str, str]:
    """Run ``gateway ARGS`` with the gateway's token (``token=None``: none at all)."""
    proc = await asyncio.create_subprocess_exec(
        GATEWAY,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env_for(gw, gw.token if token == "" else token),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def acknowledged(gw: Gateway, mid: str) -> None:
    async with gw.channel() as channel:
        stub = interop_pb2_grpc.InteropServiceStub(channel)
        status = await wait_for_state(
            stub, gw, bytes.fromhex(mid[2:]), interop_pb2.MESSAGE_STATE_ACKNOWLEDGED
        )
        assert status.state == interop_pb2.MESSAGE_STATE_ACKNOWLEDGED, status


async def test_send_then_status_shows_it_acknowledged(gw: Gateway) -> None:
    """send --json prints the id; status --json and the table show the acknowledged state."""
    code, out, err = await cli(
        gw,
        "send",
        "--from",
        gw.evm,
        "--to",
        gw.fisco,
        "--receiver",
        "0x" + gw.chains.echo[gw.fisco].hex(),
        "--payload",
        "from the cli",
        "--json",
    )
    assert code == 0, err
    sent = json.loads(out)
    assert len(sent["id"]) == 66
    await acknowledged(gw, sent["id"])
    code, out, err = await cli(gw, "status", sent["id"], "--json")
    assert code == 0, err
    status = json.loads(out)
    assert (status["state"], status["role"], status["route"]) == (
        "acknowledged",
        "source",
        f"{gw.evm}->{gw.fisco}",
    )
    assert any(e["state"] == "delivered" for e in status["timeline"])
    code, out, _ = await cli(gw, "status", sent["id"])
    assert code == 0
    assert "acknowledged" in out
    assert "timeline" in out


async def test_messages_and_watch(gw: Gateway) -> None:
    """messages --json lists with a limit; watch --json from 0 prints the message's changes in
    sequence order through acknowledged (stopped by SIGTERM once seen)."""
    code, out, err = await cli(
        gw,
        "send",
        "--from",
        gw.fisco,
        "--to",
        gw.evm,
        "--receiver",
        "0x" + gw.chains.echo[gw.evm].hex(),
        "--payload-hex",
        "0xc0ffee",
        "--json",
    )
    assert code == 0, err
    mid = json.loads(out)["id"]
    await acknowledged(gw, mid)
    code, out, err = await cli(gw, "messages", "--json", "--limit", "1")
    assert code == 0, err
    listing = json.loads(out)
    assert len(listing["items"]) == 1
    assert listing["more"] is True
    code, out, _ = await cli(
        gw, "messages", "--json", "--chain", gw.fisco, "--state", "acknowledged"
    )
    assert mid in {i["id"] for i in json.loads(out)["items"]}

    proc = await asyncio.create_subprocess_exec(
        GATEWAY,
        "watch",
        "--from",
        "0",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env_for(gw, gw.token),
    )
    assert proc.stdout is not None
    changes = []
    async with asyncio.timeout(120):
        while True:
            line = await proc.stdout.readline()
            assert line, "watch ended early"
            change = json.loads(line)
            changes.append(change)
            if change["id"] == mid and change["state"] == "acknowledged":
                break
    proc.terminate()
    await proc.wait()
    sequences = [c["sequence"] for c in changes]
    assert sequences == sorted(sequences)
    assert {c["state"] for c in changes if c["id"] == mid} >= {"observed", "delivered"}


async def test_errors_and_exit_codes(gw: Gateway) -> None:
    """A wrong token: exit 1, UNAUTHENTICATED with a hint, the token not echoed; no token or
    a malformed id: exit 2; an unknown id: exit 1 NOT_FOUND."""
    wrong = "wrong-token-value-1234"
    code, out, err = await cli(gw, "messages", token=wrong)
    assert code == 1
    assert "UNAUTHENTICATED" in err
    assert "hint:" in err
    assert wrong not in err + out
    code, _, err = await cli(gw, "messages", token=None)
    assert code == 2
    assert "no credentials" in err
    code, _, err = await cli(gw, "status", "0x1234")
    assert code == 2
    assert "32 bytes" in err
    code, _, err = await cli(gw, "status", "0x" + "ee" * 32)
    assert code == 1
    assert "NOT_FOUND" in err
    code, _, err = await cli(
        gw,
        "send",
        "--to",
        gw.evm,
        "--receiver",
        "0x" + "11" * 20,
        "--payload",
        "x",
        "--timeout",
        "0",
    )
    assert code == 2
    assert "--timeout" in err
