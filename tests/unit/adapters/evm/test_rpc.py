"""The EVM adapter's JSON-RPC transport against hostile answers from a local HTTP server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]

_BOMB_CLIENT = textwrap.dedent(
    """
    import asyncio, socket, sys
    from aiohttp import web
    from adapters.base import UnexpectedResponse
    from adapters.deploy import DeployError
    from adapters.evm.deploy import EvmDeployClient
    from adapters.evm.rpc import EvmEndpoint

    BOMB = b"[" * 100000

    async def main() -> None:
        async def answer(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=BOMB, content_type="application/json")

        app = web.Application()
        app.router.add_post("/", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        endpoint = EvmEndpoint(url, chain="bomb", chain_id=1, call_timeout=10.0)
        try:
            await endpoint.call("eth_blockNumber", [])
        except UnexpectedResponse as exc:
            assert exc.endpoint is not None and "127.0.0.1" in exc.endpoint, exc
            print("adapter: UnexpectedResponse", flush=True)
        finally:
            await endpoint.close()
        try:
            await asyncio.to_thread(
                EvmDeployClient, name="bomb", chain_id=1, endpoints=[url], key=b"\\x01" * 32
            )
        except DeployError:
            print("deploy: DeployError", flush=True)
        await runner.cleanup()

    print("recursion limit", sys.getrecursionlimit(), flush=True)
    asyncio.run(main())
    """
)


def test_nesting_bomb_answer_is_an_unexpected_response_not_a_crash() -> None:
    """An endpoint answering ``"[" * 100000`` (py_ecc has raised the recursion limit): the
    adapter's call raises UnexpectedResponse naming the endpoint and ``gateway deploy`` a
    DeployError. Run in a subprocess so that a regression (SIGSEGV) fails this test only."""
    done = subprocess.run(
        [sys.executable, "-c", _BOMB_CLIENT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr[-2000:])
    assert "adapter: UnexpectedResponse" in done.stdout
    assert "deploy: DeployError" in done.stdout
