"""``gateway run`` as an operator runs it: a subprocess, its exit status and its output.

A bad file exits 2 naming every problem with its path; a served chain that does not answer at
start exits 1 naming it; with Anvil and the devnode it listens, answers the API, and SIGTERM
drains it to exit 0 with JSON logs that never contain the token or a key."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import grpc
import pytest

from cli.init import init_gateway
from protos.interop.v1 import interop_pb2, interop_pb2_grpc
from tests.integration.grpc.test_interop_api import free_port, send, wait_for_state, write_gateway
from tests.integration.relay.pipeline_env import two_chains

pytestmark = pytest.mark.integration

GATEWAY = str(Path(sys.executable).parent / "gateway")


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        GATEWAY,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_bad_config_exits_2_listing_every_problem(tmp_path: Path) -> None:
    """An unknown key, a bad address and no gateway section: each reported with its path."""
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[chains.evm-a]\nfamily = "evm"\nendpoints = ["http://127.0.0.1:1"]\nchain_id = 1\n'
        'confirmations = 1\ngateway = "0x12"\ncolour = "blue"\n',
        encoding="utf-8",
    )
    code, out, err = await run_cli("run", "--config", str(config))
    assert code == 2, err
    assert "chains.evm-a.colour" in err
    assert "chains.evm-a.gateway" in err
    assert out == ""


async def test_missing_runnable_sections_exit_2(tmp_path: Path) -> None:
    """A file that loads but lacks [gateway] and routes: require_runnable's problems, exit 2."""
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[chains.evm-a]\nfamily = "evm"\nendpoints = ["http://127.0.0.1:1"]\nchain_id = 1\n'
        'confirmations = 1\nrelayer_key = { env = "T_KEY_A" }\n',
        encoding="utf-8",
    )
    code, _, err = await run_cli("run", "--config", str(config))
    assert code == 2
    assert "gateway: missing" in err
    assert "chains.evm-a.gateway: not set" in err


async def test_unreachable_served_chain_exits_1_naming_it(tmp_path: Path) -> None:
    """Both chains configured with endpoints nobody listens on: exit 1, both named, at once."""
    closed = free_port()
    source = tmp_path / "chains.toml"
    source.write_text(
        f"""
[chains.evm-a]
family = "evm"
endpoints = ["http://127.0.0.1:{closed}"]
chain_id = 31337
confirmations = 1
gateway = "0x{"11" * 20}"
relayer_key = {{ env = "T_KEY_A" }}

[chains.evm-b]
family = "evm"
endpoints = ["http://127.0.0.1:{closed}/b"]
chain_id = 31338
confirmations = 1
gateway = "0x{"22" * 20}"
relayer_key = {{ env = "T_KEY_B" }}
""",
        encoding="utf-8",
    )
    result = init_gateway(
        tmp_path / "gw", name="gw-x", listen=f"127.0.0.1:{free_port()}", chains_from=source
    )
    keys = {"T_KEY_A": "0x" + "01" * 32, "T_KEY_B": "0x" + "02" * 32}
    code, _, err = await run_cli("run", "--config", str(result.config), env=keys)
    assert code == 1, err
    assert "cannot start: served chain unreachable" in err
    assert "evm-a:" in err
    assert "evm-b:" in err
    assert "Traceback" not in err


async def test_a_taken_port_exits_1_before_anything_starts(tmp_path: Path) -> None:
    """gateway.listen already bound by someone else: exit 1 naming the address, before the
    chains are even asked (they are unreachable here)."""
    source = tmp_path / "chains.toml"
    source.write_text(
        f"""
[chains.evm-a]
family = "evm"
endpoints = ["http://127.0.0.1:{free_port()}"]
chain_id = 31337
confirmations = 1
gateway = "0x{"11" * 20}"
relayer_key = {{ env = "T_KEY_A" }}

[chains.evm-b]
family = "evm"
endpoints = ["http://127.0.0.1:1"]
chain_id = 31338
confirmations = 1
gateway = "0x{"22" * 20}"
relayer_key = {{ env = "T_KEY_B" }}
""",
        encoding="utf-8",
    )
    with socket.create_server(("127.0.0.1", 0)) as taken:
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        result = init_gateway(tmp_path / "gw", name="gw-x", listen=listen, chains_from=source)
        keys = {"T_KEY_A": "0x" + "01" * 32, "T_KEY_B": "0x" + "02" * 32}
        code, _, err = await run_cli("run", "--config", str(result.config), env=keys)
    assert code == 1, err
    assert f"cannot start: cannot listen on {listen}" in err
    assert "unreachable" not in err


async def test_missing_key_exits_2_with_its_path(tmp_path: Path) -> None:
    """A key variable that is not set is a configuration problem named by its path."""
    source = tmp_path / "chains.toml"
    source.write_text(
        f"""
[chains.evm-a]
family = "evm"
endpoints = ["http://127.0.0.1:{free_port()}"]
chain_id = 31337
confirmations = 1
gateway = "0x{"11" * 20}"
relayer_key = {{ env = "T_UNSET_KEY_{os.getpid()}" }}

[chains.evm-b]
family = "evm"
endpoints = ["http://127.0.0.1:1"]
chain_id = 31338
confirmations = 1
gateway = "0x{"22" * 20}"
relayer_key = {{ env = "T_KEY_B" }}
""",
        encoding="utf-8",
    )
    result = init_gateway(
        tmp_path / "gw", name="gw-x", listen=f"127.0.0.1:{free_port()}", chains_from=source
    )
    code, _, err = await run_cli(
        "run", "--config", str(result.config), env={"T_KEY_B": "0x" + "02" * 32}
    )
    assert code == 2, err
    assert "chains.evm-a.relayer_key" in err
    assert "chains.evm-b" not in err


async def test_sigterm_drains_and_exits_0(tmp_path: Path) -> None:
    """With both chains up: the process prints where it listens, answers ListChains with the
    token, and on SIGTERM drains and exits 0; its JSON logs hold no token or key."""
    async with two_chains() as chains:
        gw = await write_gateway(chains, tmp_path / "gw")
        proc = await asyncio.create_subprocess_exec(
            GATEWAY,
            "run",
            "--config",
            str(gw.config),
            "--log-format",
            "json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **gw.environ},
        )
        assert proc.stderr is not None
        assert proc.stdout is not None
        stdout_task = asyncio.create_task(proc.stdout.read())
        banner: list[str] = []
        async with asyncio.timeout(120):
            while not any("stop with SIGTERM" in line for line in banner):
                line = (await proc.stderr.readline()).decode()
                assert line, "gateway run ended before listening: " + "".join(banner)
                banner.append(line)
        text = "".join(banner)
        assert f"listening on {gw.listen}" in text
        assert gw.api_listen in text
        assert f"served chains: {gw.evm}, {gw.fisco}" in text
        async with gw.channel() as channel:
            stub = interop_pb2_grpc.InteropServiceStub(channel)
            chains_answer = await stub.ListChains(
                interop_pb2.ListChainsRequest(), metadata=gw.metadata(), timeout=30
            )
            assert {c.chain for c in chains_answer.chains} == {gw.evm, gw.fisco}
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ListChains(interop_pb2.ListChainsRequest(), timeout=30)
            assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
            sent = await send(stub, gw, gw.evm, gw.fisco, "logged")
            status = await wait_for_state(stub, gw, sent.id, interop_pb2.MESSAGE_STATE_ACKNOWLEDGED)
            assert status.state == interop_pb2.MESSAGE_STATE_ACKNOWLEDGED
            watch = stub.WatchMessages(interop_pb2.WatchMessagesRequest(), metadata=gw.metadata())
            first = await asyncio.wait_for(anext(aiter(watch)), 60)
            assert first.sequence > 0
            second = await run_cli("run", "--config", str(gw.config), env=gw.environ)
            assert second[0] == 1, second
            assert "another gateway is running with the data folder" in second[2]
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):  # the stream ends cleanly on drain
                rest_of_stream = [change async for change in watch]
            assert await watch.code() is grpc.StatusCode.OK
            assert all(c.sequence > first.sequence for c in rest_of_stream)
        code = await asyncio.wait_for(proc.wait(), 120)
        logs = (await stdout_task).decode()
        rest = (await proc.stderr.read()).decode()
    assert code == 0, rest
    events = [json.loads(line)["event"] for line in logs.splitlines() if line.startswith("{")]
    assert "gateway_running" in events
    assert events[-1] == "gateway_drained"
    assert "gateway_signal" in events
    mid = "0x" + sent.id.hex()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    changes = [line["event"] for line in lines if line.get("message_id") == mid]
    for change in ("message_observed", "message_delivered", "message_acknowledged"):
        assert changes.count(change) >= 1, changes
    for secret in [gw.token, *(value.removeprefix("0x") for value in gw.environ.values())]:
        assert secret not in logs
        assert secret not in rest
