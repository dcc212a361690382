"""FiscoAdapter against forgeries and bad endpoints: look-alike gateways, log-shaped output, a
seal through a contract, injected logs, bodies that do not hash to the sealed id, wrong
receipts, and endpoints that refuse, hang or answer garbage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, cast

import pytest
from structlog.testing import capture_logs

from adapters.base import ChainTimeout, ChainUnavailable, ConfigurationError, UnexpectedResponse
from adapters.fisco.adapter import FiscoAdapter
from tests.integration.adapters.env import ChainEnv, read_all
from tests.integration.adapters.env_fisco import (
    CHAIN,
    RELAYER,
    SENT_TOPIC,
    adapter_with,
    driver_of,
    fisco_env,
    head,
)
from tests.integration.adapters.fisco_proxy import (
    echoing_404_endpoint,
    garbage_endpoint,
    hanging_endpoint,
    refused_url,
    tampering_proxy,
)
from verifier.errors import VerificationError
from verifier.evidence import verify_bundle

pytestmark = pytest.mark.integration
FAR = 2**40


@pytest.fixture(name="env", scope="module")
async def _env() -> AsyncIterator[ChainEnv]:
    """One devnode with the gateway for the module."""
    async with fisco_env(seed="adapter-hostile") as env:
        yield env


def as_get_logs_entry(receipt: dict[str, Any], gateway: bytes, log: dict[str, Any]) -> Any:
    """A forged getLogs entry: ``log`` claimed as the gateway's, in ``receipt``'s transaction."""
    return {
        "address": "0x" + gateway.hex(),
        "blockHash": "0x" + "00" * 32,
        "blockNumber": hex(receipt["blockNumber"]),
        "data": log["data"],
        "logIndex": "0x0",
        "removed": False,
        "topics": log["topics"],
        "transactionHash": receipt["transactionHash"],
        "transactionIndex": "0x0",
    }


async def test_forged_seals_never_yield_a_fact(env: ChainEnv) -> None:
    """A FakeGateway's Sealed log, log-shaped output of LogShaped and a seal() made through a
    contract yield no fact: a lying endpoint presenting each as the gateway's log fails the
    page (naming it), and with an honest endpoint the page has exactly the real fact."""
    driver, gateway = driver_of(env), env.gateway
    start = await head(env) + 1
    adapter = cast(FiscoAdapter, env.adapter)
    real_id, _ = await adapter.send_message(CHAIN, env.ping_pong, b"victim", FAR)
    forged: list[Any] = []
    # 1. A look-alike gateway sealing the real id.
    fake = await driver.deploy("FakeGateway")
    assert (await driver.transact(fake, "load(bytes32[],bytes32[])", [[real_id], []]))[1]
    receipt = await driver.transact_receipt(fake, "seal()", account=RELAYER)
    assert receipt["status"] == 0
    forged.append(as_get_logs_entry(receipt, gateway, receipt["logEntries"][0]))
    sealed_log = receipt["logEntries"][0]
    # 2. Output shaped like the gateway's Sealed log.
    shaped = await driver.deploy("LogShaped")
    blob = (
        gateway.hex().encode()
        + b"".join(bytes.fromhex(t[2:]) for t in sealed_log["topics"])
        + bytes.fromhex(sealed_log["data"][2:])
    )
    assert (await driver.transact(shaped, "load(bytes)", [blob]))[1]
    receipt = await driver.send_raw("0x" + shaped.hex(), b"\x01\x02\x03\x04")
    assert receipt["status"] == 0
    assert receipt["output"] == "0x" + blob.hex()
    forged.append(as_get_logs_entry(receipt, gateway, sealed_log))
    # 3. A contract the owner made a relayer, sealing through itself: the gateway reverts.
    proxy = await driver.deploy("SealProxy", (gateway,))
    assert (await driver.transact(gateway, "addRelayer(address)", [proxy], account=0))[1]
    receipt = await driver.transact_receipt(proxy, "sealVia()", account=RELAYER)
    assert receipt["status"] != 0
    forged.append(as_get_logs_entry(receipt, gateway, sealed_log))

    cursor = adapter.initial_cursor(start)
    for sealed in (False, True):
        if sealed:
            assert await adapter.seal() is not None  # the real seal: exactly the real fact
        for forgery in forged:

            def inject(method: str, params: list[Any], result: Any, f: Any = forgery) -> Any:
                if method == "getLogs" and params[1]["topics"] == []:
                    lo, hi = int(params[1]["fromBlock"], 16), int(params[1]["toBlock"], 16)
                    return result + ([f] if lo <= int(f["blockNumber"], 16) <= hi else [])
                return result

            async with tampering_proxy(driver.node.url, inject) as url:
                lying = adapter_with(env, url)
                both = adapter_with(env, url, driver.node.url)
                try:
                    # the forgery is the endpoint's fault (its receipt holds no such log) ...
                    with pytest.raises(UnexpectedResponse) as caught:
                        await read_all(lying, cursor)
                    assert caught.value.endpoint == url
                    # ... and never a fact, nor an unusable seal, from any endpoint
                    facts = (await read_all(both, cursor))[0]
                finally:
                    await lying.close()
                    await both.close()
            assert [f.id for f in facts] == ([real_id] if sealed else [])


async def test_body_that_does_not_hash_to_the_sealed_id_is_refused(env: ChainEnv) -> None:
    """An endpoint that alters a MessageSent body gets no fact out of it: the page fails there
    (naming it) and is read again from the next endpoint."""
    driver, adapter = driver_of(env), cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor(await head(env) + 1)
    sent_id, _ = await adapter.send_message(CHAIN, env.ping_pong, b"original", FAR)
    await adapter.seal()

    def alter(method: str, params: list[Any], result: Any) -> Any:
        if method == "getLogs":
            for entry in result:
                if entry["topics"][0] == SENT_TOPIC:
                    entry["data"] = entry["data"].replace(b"original".hex(), b"0riginal".hex())
        return result

    async with tampering_proxy(driver.node.url, alter) as url:
        only_lying = adapter_with(env, url)
        both = adapter_with(env, url, driver.node.url)
        try:
            with pytest.raises(UnexpectedResponse) as caught:
                await only_lying.facts(cursor)
            assert caught.value.endpoint == url
            page = await both.facts(cursor)
        finally:
            await only_lying.close()
            await both.close()
    assert [f.id for f in page.facts] == [sent_id]
    assert page.facts[0].endpoint == driver.node.url
    assert page.facts[0].message is not None
    assert page.facts[0].message.payload == b"original"


async def test_wrong_receipt_fails_verification_and_refetch_avoids_it(env: ChainEnv) -> None:
    """A receipt altered by the endpoint makes a bundle that fails verify_bundle; refetch with
    that endpoint avoided brings one that verifies."""
    driver, adapter = driver_of(env), cast(FiscoAdapter, env.adapter)
    cursor = adapter.initial_cursor(await head(env) + 1)
    await adapter.send_message(CHAIN, env.ping_pong, b"receipt", FAR)
    await adapter.seal()

    def alter(method: str, params: list[Any], result: Any) -> Any:
        if method == "getTransactionReceipt" and params[3] is True:
            result["gasUsed"] = str(int(result["gasUsed"]) + 1)
        return result

    async with tampering_proxy(driver.node.url, alter) as url:
        both = adapter_with(env, url, driver.node.url)
        try:
            (fact,) = (await both.facts(cursor)).facts
            assert fact.evidence is not None
            assert fact.evidence.endpoint == url
            with pytest.raises(VerificationError):
                verify_bundle(fact.evidence.bundle)
            good = await both.refetch(fact, avoid=frozenset({url}))
        finally:
            await both.close()
    assert good.evidence is not None
    assert good.evidence.endpoint == driver.node.url
    assert good.id == fact.id
    verify_bundle(good.evidence.bundle)


async def test_endpoint_faults_are_typed_and_failed_over(env: ChainEnv) -> None:
    """Refused, hanging and garbage endpoints raise ChainUnavailable, ChainTimeout and
    UnexpectedResponse naming the endpoint; a pool with a good one fails over to it."""
    good = driver_of(env).node.url
    refused = refused_url()
    async with hanging_endpoint() as hanging, garbage_endpoint() as garbage:
        cases = [
            (refused, ChainUnavailable),
            (hanging, ChainTimeout),
            (garbage, UnexpectedResponse),
        ]
        for url, kind in cases:
            one = adapter_with(env, url, call_timeout=0.5)
            try:
                with pytest.raises(kind) as caught:
                    await one.status()
                assert caught.value.endpoint == url
                assert url in str(caught.value)
            finally:
                await one.close()
        pool = adapter_with(env, refused, hanging, garbage, good, call_timeout=0.5)
        try:
            status = await pool.status()
            assert status.head > 0
            health = {h.url: h for h in status.endpoints}
            assert [health[u].healthy for u in (refused, hanging, garbage, good)] == [
                False,
                False,
                False,
                True,
            ]
            assert health[hanging].last_error is not None
            page = await pool.facts(pool.initial_cursor(status.head))
            assert page.final_height >= status.head
        finally:
            await pool.close()


async def test_endpoint_credentials_are_never_shown(env: ChainEnv) -> None:
    """Endpoint URLs with a user, password, path key and query key are named scheme://host:port/…
    in facts, evidence, submissions, health, errors (HTTP status text included) and logs, and
    refetch(avoid=) takes those names."""
    driver = driver_of(env)
    secret = "s3cr3tkey"
    identity = cast(Any, lambda method, params, result: result)
    async with tampering_proxy(driver.node.url, identity) as proxy, echoing_404_endpoint() as nf:
        port = proxy.rsplit(":", 1)[1]
        keyed = f"http://user:{secret}@127.0.0.1:{port}/v2/{secret}?apikey={secret}"
        not_found = f"{nf}/v1/{secret}?apikey={secret}"
        refused = f"{refused_url()}/{secret}"
        adapter = adapter_with(env, refused, not_found, keyed)
        errors: list[str] = []
        try:
            cursor = adapter.initial_cursor(await head(env) + 1)
            with capture_logs() as logs:
                sent_id, submission = await adapter.send_message(CHAIN, env.ping_pong, b"k", FAR)
                await adapter.seal(force=True)
                facts, _ = await read_all(adapter, cursor)
                status = await adapter.status()
                names = {h.url for h in status.endpoints}
                (fact,) = [f for f in facts if f.id == sent_id]
                again = await adapter.refetch(fact, avoid=frozenset(names - {fact.endpoint}))
            for url in (refused, not_found):
                one = adapter_with(env, url, call_timeout=1.0)
                try:
                    with pytest.raises(ChainUnavailable) as caught:
                        await one.status()
                    errors += [str(caught.value), repr(caught.value.__cause__)]
                    assert caught.value.endpoint is not None
                    assert caught.value.endpoint.endswith("/…")
                finally:
                    await one.close()
        finally:
            await adapter.close()
    assert fact.endpoint == f"http://127.0.0.1:{port}/…"
    assert fact.evidence is not None
    assert fact.evidence.endpoint == fact.endpoint
    assert submission.endpoint == fact.endpoint
    assert again.endpoint == fact.endpoint
    assert "HTTP 404" in errors[2]
    shown = repr((facts, status, submission, again, logs, errors))
    assert secret not in shown
    assert "user" not in shown


async def test_submission_receipts_of_another_or_no_transaction_fail_over(env: ChainEnv) -> None:
    """A sendTransaction answer without transactionHash, or naming another transaction, is the
    endpoint's fault (UnexpectedResponse naming it); with an honest endpoint behind it, the
    receipt is read there. Log entries that are not objects raise UnexpectedResponse, never
    AttributeError."""
    driver = driver_of(env)

    def drop_hash(method: str, params: list[Any], result: Any) -> Any:
        if method == "sendTransaction":
            result.pop("transactionHash")
        return result

    def other_hash(method: str, params: list[Any], result: Any) -> Any:
        if method == "sendTransaction":
            result["transactionHash"] = "0x" + "ab" * 32
        return result

    def junk_logs(method: str, params: list[Any], result: Any) -> Any:
        if method == "sendTransaction":
            result["logEntries"] = [1, "x", None, {"address": 5, "topics": "no"}]
        return result

    for tamper in (drop_hash, other_hash, junk_logs):
        async with tampering_proxy(driver.node.url, tamper) as url:
            lying = adapter_with(env, url)
            both = adapter_with(env, url, driver.node.url)
            try:
                with pytest.raises(UnexpectedResponse) as caught:
                    await lying.send_message(CHAIN, env.ping_pong, b"s", FAR)
                assert caught.value.endpoint == url
                if tamper is not junk_logs:
                    sent_id, submission = await both.send_message(CHAIN, env.ping_pong, b"s", FAR)
                    assert submission.endpoint == driver.node.url
                    assert await both.sent_state(sent_id) == 1
            finally:
                await lying.close()
                await both.close()
    await cast(FiscoAdapter, env.adapter).seal(force=True)


async def test_wrong_gateway_or_chain_is_a_configuration_error(env: ChainEnv) -> None:
    """First use checks the gateway: an address without code, a contract that is not the
    gateway, or a gateway whose chainName() is not the configured chain raise
    ConfigurationError, before any fact or transaction."""
    settings = cast(FiscoAdapter, env.adapter).settings
    cases = [
        (replace(settings, gateway=b"\x11" * 20), "has no code"),
        (replace(settings, gateway=env.ping_pong), "does not answer chainName()"),
        (
            replace(settings, chain="fisco-other"),
            "says its chain is 'fisco-test', the configuration says 'fisco-other'",
        ),
    ]
    for wrong, text in cases:
        adapter = FiscoAdapter(wrong)
        try:
            with pytest.raises(ConfigurationError) as caught:
                await adapter.facts(adapter.initial_cursor(0))
            assert text in str(caught.value)
            assert "0x" + wrong.gateway.hex() in str(caught.value)
            with pytest.raises(ConfigurationError):
                await adapter.seal(force=True)
            with pytest.raises(ConfigurationError):
                await adapter.send_message(CHAIN, env.ping_pong, b"x", FAR)
        finally:
            await adapter.close()
