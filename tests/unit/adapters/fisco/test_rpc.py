"""FiscoRpcClient: mutual TLS with the node's ca.crt / sdk.crt / sdk.key, and node error codes
mapped to the adapter errors the relay classifies."""

from __future__ import annotations

import datetime
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.base import (
    ChainTimeout,
    ChainUnavailable,
    ConfigurationError,
    NotFound,
    RejectedByChain,
    UnexpectedResponse,
)
from adapters.fisco.rpc import FiscoRpcClient, TransactionKnown, map_node_error
from adapters.fisco.settings import FiscoEndpoint


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    folder: Path, cn: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
) -> tuple[Path, Path, x509.Name, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (_name(cn), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_path, key_path = folder / f"{cn}.crt", folder / f"{cn}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, _name(cn), key


@pytest.fixture(name="pki", scope="module")
def _pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A chain CA, a node certificate named node0 (not the host), an SDK certificate, and an
    unrelated CA."""
    folder = tmp_path_factory.mktemp("pki")
    ca, _, ca_name, ca_key = _issue(folder, "ca", None)
    server_cert, server_key, _, _ = _issue(folder, "node0", (ca_name, ca_key))
    client_cert, client_key, _, _ = _issue(folder, "sdk", (ca_name, ca_key))
    other_ca, _, _, _ = _issue(folder, "other", None)
    return Pki(ca, server_cert, server_key, client_cert, client_key, other_ca)


@pytest.fixture(name="tls_url", scope="module")
async def _tls_url(pki: Pki) -> AsyncIterator[str]:
    """A JSON-RPC server demanding a client certificate from the chain CA."""

    async def handle(request: web.Request) -> web.Response:
        call = json.loads(await request.read())
        return web.json_response({"id": call["id"], "jsonrpc": "2.0", "result": 7})

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"https://127.0.0.1:{port}"
    await runner.cleanup()


async def _block_number(endpoint: FiscoEndpoint) -> object:
    client = FiscoRpcClient(endpoint, chain="fisco-test", group="group0", timeout=5.0)
    try:
        return await client.call("getBlockNumber")
    finally:
        await client.close()


async def test_mutual_tls_with_the_sdk_files(pki: Pki, tls_url: str) -> None:
    """ca.crt + sdk.crt + sdk.key: the call goes through (host name not checked)."""
    endpoint = FiscoEndpoint(tls_url, pki.ca, pki.client_cert, pki.client_key)
    assert await _block_number(endpoint) == 7


async def test_tls_without_client_certificate_is_unavailable(pki: Pki, tls_url: str) -> None:
    """The node refuses a client without a certificate: ChainUnavailable naming the endpoint."""
    with pytest.raises(ChainUnavailable) as caught:
        await _block_number(FiscoEndpoint(tls_url, pki.ca))
    assert caught.value.endpoint == tls_url


async def test_tls_node_from_another_ca_is_unavailable(pki: Pki, tls_url: str) -> None:
    """A node certificate that does not chain to the configured CA is refused."""
    endpoint = FiscoEndpoint(tls_url, pki.other_ca, pki.client_cert, pki.client_key)
    with pytest.raises(ChainUnavailable):
        await _block_number(endpoint)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (10000, RejectedByChain),  # NonceCheckFail
        (10001, RejectedByChain),  # BlockLimitCheckFail
        (10006, RejectedByChain),  # InvalidChainId
        (10008, RejectedByChain),  # InvalidSignature
        (10004, TransactionKnown),  # AlreadyInTxPool
        (10005, TransactionKnown),  # TxAlreadyInChain
        (10002, ChainUnavailable),  # TxPoolIsFull
        (10010, ChainTimeout),  # TransactionPoolTimeout
        (3008, NotFound),
        (-32005, ConfigurationError),
        (-32000, ChainUnavailable),
        (-32602, UnexpectedResponse),
        ("x", UnexpectedResponse),
    ],
)
def test_node_error_codes(code: object, kind: type[Exception]) -> None:
    """Each node error code maps to one adapter error type, naming the endpoint."""
    error = map_node_error(code, "msg", chain="c", endpoint="http://n", method="m")
    assert type(error) is kind
    assert "http://n" in str(error)


BOMB_CLIENT = """
import asyncio, sys
sys.setrecursionlimit(100_000)  # what py_ecc and py-evm do on import
from aiohttp import web
from adapters.base import UnexpectedResponse
from adapters.fisco.rpc import FiscoRpcClient
from adapters.fisco.settings import FiscoEndpoint

async def main() -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=b"[" * 100_000, content_type="application/json")

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = FiscoRpcClient(FiscoEndpoint(url), chain="fisco-test", group="group0", timeout=5.0)
    try:
        await client.call("getBlockNumber")
    except UnexpectedResponse as exc:
        print("UnexpectedResponse", exc.endpoint == url, exc.reason[:60])
    try:  # gateway deploy's own client (sync), in a thread while the server runs
        from adapters.deploy import DeployError
        from adapters.fisco.deploy import FiscoDeployClient
        from verifier.hashing import CryptoSuite

        await asyncio.to_thread(
            lambda: FiscoDeployClient(
                name="fisco-test", chain_id="chain0", group_id="group0",
                crypto=CryptoSuite.KECCAK256_SECP256K1, endpoints=[FiscoEndpoint(url)],
                sealer_ids=(), key=b"\x01" * 32,
            )
        )
    except DeployError as exc:
        print("DeployError", str(exc)[:60])
    finally:
        await client.close()
        await runner.cleanup()

asyncio.run(main())
"""


def test_nesting_bomb_is_an_unexpected_response_not_a_crash() -> None:
    """An endpoint answering ``[`` * 100,000 once crashed the process (json.loads recursion,
    with the limit raised as py_ecc does); now it is UnexpectedResponse naming the endpoint,
    and a DeployError for ``gateway deploy``.
    The client runs in a subprocess, so a regression fails this test instead of the run."""
    done = subprocess.run(
        [sys.executable, "-c", BOMB_CLIENT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[4],
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    lines = done.stdout.splitlines()
    assert lines[0].startswith("UnexpectedResponse True"), done.stdout
    assert lines[1].startswith("DeployError"), done.stdout
