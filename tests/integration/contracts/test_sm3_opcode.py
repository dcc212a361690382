"""On an SM chain the EVM's KECCAK256 opcode is SM3, and the gateway's ids agree with Python's.

FISCO BCOS 3.x with ``sm_crypto=true`` hands evmone a host hash function (SM3) that its KECCAK256
instruction calls instead of Keccak-256 (docs/sm-crypto.md, "Hash opcode on SM chains"). Without
an SM node, the devnode's py-evm executor is run with ``opcode_hash=HashScheme.SM3`` on a
hand-assembled contract that returns the opcode's hash of its calldata, and the result is checked
against ``verifier.hashing`` — including a full message id built from two such calls, the way
``CrossChainGateway`` builds it with ``keccak256(abi.encode(...))``.
"""

from __future__ import annotations

import pytest
from eth_abi.abi import encode

from devnet.fisco.errors import TransactionStatus
from devnet.fisco.evm import EvmExecutor
from devnet.fisco.store import KeyValueStore
from verifier.hashing import HashScheme, hasher_for, keccak256, sm3
from verifier.messages import Message, message_id

pytestmark = pytest.mark.integration

# Runtime: copy all calldata to memory 0, hash it with opcode 0x20, return the 32-byte word.
RUNTIME = bytes.fromhex(
    " ".join(
        (
            "36 6000 6000 37",  # CALLDATASIZE PUSH1 0 PUSH1 0 CALLDATACOPY
            "36 6000 20",  # CALLDATASIZE PUSH1 0 KECCAK256
            "6000 52",  # PUSH1 0 MSTORE
            "6020 6000 f3",  # PUSH1 32 PUSH1 0 RETURN
        )
    )
)
# Init code (12 bytes): CODECOPY the runtime that follows it to memory 0, then RETURN it.
_N = f"60{len(RUNTIME):02x}"  # PUSH1 len(RUNTIME)
INIT = bytes.fromhex(f"{_N} 600c 6000 39 {_N} 6000 f3") + RUNTIME
SENDER = bytes.fromhex("11" * 20)
CONTRACT = bytes.fromhex("c0" * 20)

INPUTS = [b"", b"abc", bytes(range(32)), bytes(range(256)) * 3]


def _deploy(opcode_hash: HashScheme | None) -> EvmExecutor:
    store = KeyValueStore()
    if opcode_hash is None:  # the executor as the devnode builds it today
        evm = EvmExecutor(store, None)
    else:
        evm = EvmExecutor(store, None, opcode_hash=opcode_hash)
    block = evm.block(1, 1_700_000_000_000)
    created = block.apply(SENDER, None, INIT, CONTRACT)
    assert created.status is TransactionStatus.NONE, created
    block.finish()
    assert evm.get_code(CONTRACT) == RUNTIME
    return evm


def _opcode_hash(evm: EvmExecutor, data: bytes) -> bytes:
    result = evm.call(CONTRACT, data, 2, 1_700_000_001_000)
    assert result.status is TransactionStatus.NONE, result
    assert len(result.output) == 32
    return result.output


@pytest.fixture(scope="module")
def sm_evm() -> EvmExecutor:
    return _deploy(HashScheme.SM3)


@pytest.fixture(scope="module")
def keccak_evm() -> EvmExecutor:
    return _deploy(None)


def test_sm3_known_answer() -> None:
    """GB/T 32905 example 1, so that 'SM3' below is the standard's SM3."""
    expected = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abc").hex() == expected


@pytest.mark.parametrize("data", INPUTS, ids=lambda d: f"{len(d)}B")
def test_opcode_is_sm3_under_the_sm_rule(sm_evm: EvmExecutor, data: bytes) -> None:
    out = _opcode_hash(sm_evm, data)
    assert out == sm3(data)
    assert out != keccak256(data)


@pytest.mark.parametrize("data", INPUTS, ids=lambda d: f"{len(d)}B")
def test_opcode_is_keccak_by_default(keccak_evm: EvmExecutor, data: bytes) -> None:
    assert _opcode_hash(keccak_evm, data) == keccak256(data)


def test_explicit_keccak_scheme_is_the_default(keccak_evm: EvmExecutor) -> None:
    evm = _deploy(HashScheme.KECCAK256)
    for data in INPUTS:
        assert _opcode_hash(evm, data) == _opcode_hash(keccak_evm, data)


def test_gas_is_the_same_under_both_hashes(sm_evm: EvmExecutor, keccak_evm: EvmExecutor) -> None:
    """Swapping the hash changes the result, not the gas (evmone charges 30 + 6 per word)."""
    for data in INPUTS:
        sm = sm_evm.call(CONTRACT, data, 2, 1_700_000_001_000)
        kk = keccak_evm.call(CONTRACT, data, 2, 1_700_000_001_000)
        assert sm.gas_used == kk.gas_used


@pytest.mark.parametrize("scheme", [HashScheme.SM3, HashScheme.KECCAK256])
def test_message_id_agrees_with_python(scheme: HashScheme) -> None:
    """Both hashes of the id (payload, then abi.encode(...)) done by the EVM equal message_id()."""
    evm = _deploy(scheme)
    message = Message(
        src_chain="fisco-sm",
        src_gateway=bytes.fromhex("a1" * 20),
        dst_chain="anvil",
        nonce=7,
        sender=bytes.fromhex("b2" * 20),
        receiver=bytes.fromhex("c3" * 20),
        payload=b"hello, cross-chain" * 5,
        timeout=1_900_000_000,
    )
    payload_hash = _opcode_hash(evm, message.payload)
    preimage = encode(
        ["string", "address", "string", "uint64", "address", "address", "bytes32", "uint64"],
        [
            message.src_chain,
            message.src_gateway,
            message.dst_chain,
            message.nonce,
            message.sender,
            message.receiver,
            payload_hash,
            message.timeout,
        ],
    )
    chain_id = _opcode_hash(evm, preimage)
    assert chain_id == message_id(message, hasher_for(scheme))
    other = HashScheme.KECCAK256 if scheme is HashScheme.SM3 else HashScheme.SM3
    assert chain_id != message_id(message, hasher_for(other))
