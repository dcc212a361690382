"""Attacks on the relay's fact verification, performed with real chain data.

Anvil and the FISCO devnode run the gateway contract; the adapters observe real facts with real
evidence; the relay's :class:`FactVerifier` judges them against :class:`ConfiguredTrustStore`
roots built from configuration and, for EVM chains, from Anvil endpoints it queries itself.
Every attack must end in :class:`EvidenceRejected` (with the verifier's check) or, where the
protocol says so, :class:`NotYetTrusted`: never in a verified fact.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest

from adapters.base import ChainAdapter, Fact, FactKind, display_url
from adapters.evm.rpc import EvmEndpoint
from adapters.fisco.adapter import FiscoAdapter
from devnet.anvil import Anvil, start_anvil
from relay import verify as relay_verify
from relay.trust import (
    ConfiguredTrustStore,
    EvidenceRejected,
    EvmTrustConfig,
    FiscoTrustConfig,
    NotYetTrusted,
    TrustConfig,
    fisco_root,
)
from relay.verify import FactVerifier, VerifiedFact
from tests.integration.adapters.env import ChainEnv, read_all
from tests.integration.adapters.env_evm import EvmChainEnv, _stop, evm_env
from tests.integration.adapters.env_fisco import (
    RELAYER,
    account,
    adapter_with,
    driver_of,
    fisco_env,
)
from verifier.errors import VerificationError
from verifier.evidence import verify_bundle
from verifier.evm.header import compute_block_hash
from verifier.messages import DeliveryStatus, Message, message_id

pytestmark = pytest.mark.integration

PING = "ping(string,address,bytes,uint64)"


# -- environments and helpers ---------------------------------------------------------------


@pytest.fixture(name="evm", scope="module")
async def _evm() -> AsyncIterator[EvmChainEnv]:
    async with evm_env() as env:
        yield env


@pytest.fixture(name="fisco", scope="module")
async def _fisco() -> AsyncIterator[ChainEnv]:
    async with fisco_env(seed="relay-verify") as env:
        yield env


@pytest.fixture(name="liar", scope="module")
def _liar(evm: EvmChainEnv) -> Iterator[Anvil]:
    """A second Anvil with the same chain id: it answers every height, with other hashes."""
    anvil = start_anvil(port=0, chain_id=evm.anvil.chain_id)
    try:
        yield anvil
    finally:
        _stop(anvil)


def evm_trust(env: EvmChainEnv, urls: Sequence[str] = (), **changes: Any) -> EvmTrustConfig:
    endpoints = tuple(urls) or (env.anvil.url,)
    values: dict[str, Any] = {
        "chain": env.chain,
        "gateway": env.gateway,
        "chain_id": env.anvil.chain_id,
        "endpoints": endpoints,
        "quorum": len(endpoints) // 2 + 1,
        "confirmations": env.settings.confirmations,
        "finality_tag": None,
        "call_timeout": 5.0,
    }
    values.update(changes)
    return EvmTrustConfig(**values)


def fisco_trust(env: ChainEnv, **changes: Any) -> FiscoTrustConfig:
    s = cast(FiscoAdapter, env.adapter).settings
    values: dict[str, Any] = {
        "chain": s.chain,
        "crypto": s.crypto,
        "gateway": s.gateway,
        "chain_id": s.chain_id,
        "group_id": s.group_id,
        "sealers": tuple((n.lower().removeprefix("0x"), w) for n, w in s.sealers),
    }
    values.update(changes)
    return FiscoTrustConfig(**values)


@asynccontextmanager
async def verifier_for(*configs: TrustConfig) -> AsyncIterator[FactVerifier]:
    chains = {c.chain: c for c in configs}
    store = ConfiguredTrustStore(chains)
    try:
        yield FactVerifier(store, chains)
    finally:
        await store.close()


async def settle(env: ChainEnv) -> None:
    """Everything sent so far provable and final (a seal on FISCO, blocks on Anvil)."""
    while await env.adapter.seal(force=True) is not None:
        pass
    await env.driver.finalize()


async def sent(env: ChainEnv, payload: bytes, adapter: ChainAdapter | None = None) -> Fact:
    """A message sent through ``adapter`` (default: the env's) and observed with evidence."""
    adapter = adapter or env.adapter
    start = adapter.initial_cursor((await adapter.status()).head)
    now = await env.driver.timestamp()
    mid, _ = await adapter.send_message(env.chain, env.ping_pong, payload, now + 3600)
    while await adapter.seal(force=True) is not None:
        pass
    await env.driver.finalize()
    facts, _ = await read_all(adapter, start)
    [fact] = [f for f in facts if f.kind is FactKind.MESSAGE_SENT and f.id == mid]
    return fact


async def delivered(env: ChainEnv, fact: Fact) -> Fact:
    """``fact``'s message delivered on the same chain and its result observed."""
    assert fact.message is not None
    start = env.adapter.initial_cursor((await env.adapter.status()).head)
    await env.adapter.deliver([(fact.id, fact.message)])
    await settle(env)
    facts, _ = await read_all(env.adapter, start)
    [result] = [f for f in facts if f.kind is FactKind.DELIVERY_RESULT and f.id == fact.id]
    return result


def bundle_of(fact: Fact) -> dict[str, Any]:
    assert fact.evidence is not None
    return copy.deepcopy(fact.evidence.bundle)


def body(fact: Fact) -> Message:
    assert fact.message is not None
    return fact.message


async def verify(verifier: FactVerifier, fact: Fact, b: dict[str, Any] | None = None) -> Any:
    return await verifier.verify_message(
        body(fact), fact.id, b if b is not None else bundle_of(fact)
    )


async def rejected(coro: Any, check: str) -> EvidenceRejected:
    with pytest.raises(EvidenceRejected) as caught:
        await coro
    assert caught.value.check == check, caught.value
    return caught.value


def verifier_check(b: dict[str, Any], trust: dict[str, Any]) -> str:
    """The check the verifier itself names for ``b`` under ``trust``."""
    with pytest.raises(VerificationError) as caught:
        verify_bundle({**b, "trust": trust})
    return caught.value.check


# -- honest facts pass (so that every rejection below is the attack's doing) -----------------


async def test_honest_facts_verify_on_both_chains(evm: EvmChainEnv, fisco: ChainEnv) -> None:
    """A message and its result on Anvil and on the devnode verify with the relay's roots."""
    async with verifier_for(evm_trust(evm), fisco_trust(fisco)) as verifier:
        for env in (evm, fisco):
            fact = await sent(env, b"honest")
            proven = await verify(verifier, fact)
            assert isinstance(proven, VerifiedFact)
            assert (proven.kind, proven.chain, proven.id) == ("message_sent", env.chain, fact.id)
            result = await delivered(env, fact)
            assert result.result is not None
            checked = await verifier.verify_result(
                body(fact), fact.id, result.result, bundle_of(result)
            )
            assert (checked.kind, checked.chain) == ("delivery_result", env.chain)
        assert proven.trust["quorum"]["have"] >= proven.trust["quorum"]["need"]


# -- who emitted it (requirement 1) ---------------------------------------------------------


async def test_a_look_alike_gateways_facts_are_rejected_on_anvil(evm: EvmChainEnv) -> None:
    """A second CrossChainGateway (same chain name) emits a genuine, provable MessageSent."""
    fake = await evm.evm.deploy("CrossChainGateway", [evm.chain, 1, 300_000, 100_000])
    await evm.evm.transact(fake, "setDestination(string,uint32)", [evm.chain, 4096], account=0)
    # Its own sender account: the env's adapter keeps track of its account's nonces.
    sender = bytes.fromhex(evm.anvil.accounts[4].private_key[2:])
    adapter = evm.adapter_with(gateway=fake, sender_key=sender)
    try:
        fact = await sent(evm, b"look-alike", adapter)
    finally:
        await adapter.close()
    verify_bundle(bundle_of(fact))  # the bundle is sound on its own
    async with verifier_for(evm_trust(evm)) as verifier:
        await rejected(verify(verifier, fact), "gateway")  # names the fake as source
        real = dataclasses.replace(body(fact), src_gateway=evm.gateway)
        real_id = message_id(real, evm.hasher)
        await rejected(verifier.verify_message(real, real_id, bundle_of(fact)), "gateway")


async def test_a_look_alike_gateways_seal_is_rejected_on_fisco(fisco: ChainEnv) -> None:
    """A second gateway on the devnode seals its own message; its seal() is not the pinned call."""
    driver = driver_of(fisco)
    fake = await driver.deploy("CrossChainGateway", (fisco.chain, 1000, 300_000, 100_000))
    for signature, args in (
        ("addRelayer(address)", [account(RELAYER)]),
        ("setDestination(string,uint32)", [fisco.chain, 4096]),
    ):
        _, ok = await driver.transact(fake, signature, args, account=0)
        assert ok, signature
    url = cast(FiscoAdapter, fisco.adapter).settings.endpoints[0].url
    adapter = adapter_with(fisco, url, gateway=fake)
    try:
        fact = await sent(fisco, b"look-alike", adapter)
    finally:
        await adapter.close()
    verify_bundle(bundle_of(fact))  # sound under the fake's own pins
    async with verifier_for(fisco_trust(fisco)) as verifier:
        await rejected(verify(verifier, fact), "gateway")
        real = dataclasses.replace(body(fact), src_gateway=fisco.gateway)
        check = verifier_check(bundle_of(fact), _fisco_root(fisco))
        assert check == "transaction_binding"
        await rejected(
            verifier.verify_message(real, message_id(real, fisco.hasher), bundle_of(fact)), check
        )


def _fisco_root(env: ChainEnv) -> dict[str, Any]:
    return dict(fisco_root(fisco_trust(env)).trust)


# -- the bundle's own trust is never believed (requirement 2, 14) -----------------------------


async def test_a_bundle_signed_by_the_attackers_sealers_is_never_accepted(fisco: ChainEnv) -> None:
    """The attacker runs their own devnode: same gateway address, chain name and ids, other
    sealers. Its bundle verifies under its own ``trust``; ours replaces it, and the attacker's
    signatures count for nothing: a quorum shortfall, retryable with an operator alarm."""
    async with fisco_env(seed="attacker") as attacker:
        assert attacker.gateway == fisco.gateway
        fact = await sent(attacker, b"forged")
    b = bundle_of(fact)
    verify_bundle(b)  # the attacker's trust holds their sealers: it would pass
    async with verifier_for(fisco_trust(fisco)) as verifier:
        with pytest.raises(NotYetTrusted) as caught:
            await verify(verifier, fact, b)
    assert "OPERATOR ALARM" in caught.value.reason
    assert "have 0" in caught.value.reason


async def test_a_header_short_of_quorum_is_not_yet_trusted(fisco: ChainEnv) -> None:
    fact = await sent(fisco, b"short")
    b = bundle_of(fact)
    b["block"]["signatureList"] = b["block"]["signatureList"][:2]
    async with verifier_for(fisco_trust(fisco)) as verifier:
        with pytest.raises(NotYetTrusted, match="OPERATOR ALARM"):
            await verify(verifier, fact, b)


async def test_a_sealer_added_on_the_chain_but_not_here_raises_the_alarm(fisco: ChainEnv) -> None:
    """Our configured set holds two sealers the chain's headers never carry: the quorum of the
    larger set cannot be met. Retryable, never accepted, with an alarm for the operator."""
    fact = await sent(fisco, b"rotated")
    base = fisco_trust(fisco)
    extra = tuple((f"{i:02x}" * 64, 1) for i in (1, 2))
    async with verifier_for(dataclasses.replace(base, sealers=base.sealers + extra)) as verifier:
        with pytest.raises(NotYetTrusted, match="OPERATOR ALARM"):
            await verify(verifier, fact)


# -- tampering, wrong message, wrong body -----------------------------------------------------


async def test_tampered_proofs_are_rejected_with_the_verifiers_check(
    evm: EvmChainEnv, fisco: ChainEnv
) -> None:
    async with verifier_for(evm_trust(evm), fisco_trust(fisco)) as verifier:
        fact = await sent(evm, b"tamper-evm")
        b = bundle_of(fact)
        b["proof"][0] = b["proof"][0][:-2] + ("00" if b["proof"][0][-2:] != "00" else "01")
        check = verifier_check(b, {"block_hash": b["block"]["hash"]})
        await rejected(verify(verifier, fact, b), check)

        fact = await sent(fisco, b"tamper-fisco")
        b = bundle_of(fact)
        item = b["proof"][-1]
        b["proof"][-1] = item[:-1] + ("0" if item[-1] != "0" else "1")
        check = verifier_check(b, _fisco_root(fisco))
        assert check == "receipt_proof"
        await rejected(verify(verifier, fact, b), check)


async def test_evidence_for_another_message_is_rejected(evm: EvmChainEnv, fisco: ChainEnv) -> None:
    """A genuine proof of message A presented for a genuine message B."""
    async with verifier_for(evm_trust(evm), fisco_trust(fisco)) as verifier:
        a, other = await sent(evm, b"a"), await sent(evm, b"b")
        await rejected(verify(verifier, other, bundle_of(a)), "event_body")
        a, other = await sent(fisco, b"a"), await sent(fisco, b"b")
        assert a.evidence is not None
        assert other.evidence is not None
        assert a.evidence.seal_number != other.evidence.seal_number
        await rejected(verify(verifier, other, bundle_of(a)), "sealed_entry")


async def test_a_body_that_does_not_hash_to_the_proven_id_is_rejected(
    evm: EvmChainEnv, fisco: ChainEnv
) -> None:
    async with verifier_for(evm_trust(evm), fisco_trust(fisco)) as verifier:
        for env in (evm, fisco):
            fact = await sent(env, b"original")
            forged = dataclasses.replace(body(fact), payload=b"forged")
            await rejected(verifier.verify_message(forged, fact.id, bundle_of(fact)), "message_id")


async def test_results_for_another_chain_gateway_or_status_are_rejected(
    evm: EvmChainEnv, fisco: ChainEnv
) -> None:
    """The trust root is the stored message's destination; the result must match it."""
    async with verifier_for(evm_trust(evm), fisco_trust(fisco)) as verifier:
        for env in (evm, fisco):
            fact = await sent(env, b"result")
            result = await delivered(env, fact)
            assert result.result is not None
            b = bundle_of(result)
            m = body(fact)
            other_dst = evm.chain if env is fisco else fisco.chain
            rerouted = dataclasses.replace(m, dst_chain=other_dst)
            await rejected(
                verifier.verify_result(rerouted, fact.id, result.result, b), "result_chain"
            )
            moved = dataclasses.replace(result.result, dst_gateway=bytes(20))
            await rejected(verifier.verify_result(m, fact.id, moved, b), "gateway")
            flipped = (
                DeliveryStatus.SUCCESS
                if result.result.status is not DeliveryStatus.SUCCESS
                else DeliveryStatus.FAILED
            )
            claimed = dataclasses.replace(result.result, status=flipped)
            check = "sealed_entry" if env is fisco else "event_body"
            await rejected(verifier.verify_result(m, fact.id, claimed, b), check)
            checked = await verifier.verify_result(m, fact.id, result.result, b)
            assert checked.id == fact.id


# -- EVM endpoints: lies, disagreement, finality, chain id (requirement 16) ------------------


async def test_an_endpoint_that_lies_about_the_block_hash_is_never_believed(
    evm: EvmChainEnv, liar: Anvil
) -> None:
    fact = await sent(evm, b"liar")
    head = int(await evm.evm.rpc.call("eth_blockNumber", []), 16)
    await _mine(liar, head + 5)
    # The liar alone (n = 1): its hash is not the bundle's block.
    async with verifier_for(evm_trust(evm, [liar.url])) as verifier:
        await rejected(verify(verifier, fact), "header_trust")
    # Honest and liar, k = 2 of 2: they disagree, so nothing is trusted yet.
    async with verifier_for(evm_trust(evm, [evm.anvil.url, liar.url])) as verifier:
        with pytest.raises(NotYetTrusted, match="disagree") as caught:
            await verify(verifier, fact)
    assert set(caught.value.endpoints) == {_name(evm.anvil.url), _name(liar.url)}
    assert fact.block_hash in caught.value.endpoints[_name(evm.anvil.url)]
    # Two honest endpoints outvote the liar (k = 2 of 3); the liar is named as dissent.
    urls = [evm.anvil.url, liar.url, evm.anvil.url + "/?second"]
    async with verifier_for(evm_trust(evm, urls)) as verifier:
        proven = await verify(verifier, fact)
    assert proven.block_hash == fact.block_hash
    assert list(proven.trust["dissent"]) == [_name(liar.url)]
    # Two liars of three: the bundle's block is not the one they agree on.
    urls = [liar.url, evm.anvil.url, liar.url + "/?again"]
    async with verifier_for(evm_trust(evm, urls)) as verifier:
        await rejected(verify(verifier, fact), "header_trust")


async def test_a_height_not_yet_final_here_is_retryable_then_accepted(evm: EvmChainEnv) -> None:
    """This gateway waits for 20 confirmations where the adapter waited for 2."""
    fact = await sent(evm, b"not-final")
    async with verifier_for(evm_trust(evm, confirmations=20)) as verifier:
        with pytest.raises(NotYetTrusted, match="not final"):
            await verify(verifier, fact)
        await evm.evm.mine(20)
        proven = await verify(verifier, fact)
    assert proven.height == fact.height


async def test_a_height_beyond_final_plus_the_margin_is_refused(evm: EvmChainEnv) -> None:
    """A self-consistent bundle for a block far past every endpoint's head: a made-up header."""
    fact = await sent(evm, b"far")
    far, near = moved_to(fact, fact.height + 10_000), moved_to(fact, fact.height + 50)
    verify_bundle({**far, "trust": {"block_hash": far["block"]["hash"]}})  # sound on its own
    async with verifier_for(evm_trust(evm, height_margin=100)) as verifier:
        await rejected(verify(verifier, fact, far), "height")
        with pytest.raises(NotYetTrusted, match="not final"):  # within the margin: wait
            await verify(verifier, fact, near)


def moved_to(fact: Fact, number: int) -> dict[str, Any]:
    """``fact``'s bundle with its header renumbered and every hash claim made consistent."""
    b = bundle_of(fact)
    b["block"]["number"] = hex(number)
    b["block"]["hash"] = "0x" + compute_block_hash(b["block"]).hex()
    b["receipt"]["blockHash"] = b["block"]["hash"]
    b["receipt"]["blockNumber"] = b["block"]["number"]
    return b


async def test_an_endpoint_of_another_chain_id_is_not_trusted(evm: EvmChainEnv) -> None:
    """The configuration expects chain id 1; the endpoint serves 31337."""
    fact = await sent(evm, b"chain-id")
    async with verifier_for(evm_trust(evm, chain_id=1)) as verifier:
        with pytest.raises(NotYetTrusted) as caught:
            await verify(verifier, fact)
    assert f"eth_chainId is {evm.anvil.chain_id}" in caught.value.endpoints[_name(evm.anvil.url)]


def _name(url: str) -> str:
    return display_url(url)


async def _mine(anvil: Anvil, height: int) -> None:
    rpc = EvmEndpoint(anvil.url, chain="liar", chain_id=anvil.chain_id, call_timeout=10.0)
    try:
        head = int(await rpc.call("eth_blockNumber", []), 16)
        if head < height:
            await rpc.call("anvil_mine", [hex(height - head)])
    finally:
        await rpc.close()


async def test_the_facts_of_one_seal_share_one_verification(
    fisco: ChainEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several messages in one seal: one quorum check for all of them, each id still checked."""
    adapter = fisco.adapter
    start = adapter.initial_cursor((await adapter.status()).head)
    now = await fisco.driver.timestamp()
    ids = [
        (await adapter.send_message(fisco.chain, fisco.ping_pong, b"s%d" % i, now + 3600))[0]
        for i in range(3)
    ]
    await settle(fisco)
    facts, _ = await read_all(adapter, start)
    sent_facts = [f for f in facts if f.kind is FactKind.MESSAGE_SENT and f.id in ids]
    assert len({f.evidence.seal_number for f in sent_facts if f.evidence}) == 1
    runs: list[int] = []

    def counting(document: object) -> Any:
        runs.append(1)
        return verify_bundle(document)

    monkeypatch.setattr(relay_verify, "verify_bundle", counting)
    async with verifier_for(fisco_trust(fisco)) as verifier:
        for fact in sent_facts:
            await verify(verifier, fact)
        forged = dataclasses.replace(body(sent_facts[0]), payload=b"x")
        forged_id = message_id(forged, fisco.hasher)
        await rejected(
            verifier.verify_message(forged, forged_id, bundle_of(sent_facts[0])), "sealed_entry"
        )
    assert len(runs) == 1
