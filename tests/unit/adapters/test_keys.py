"""adapters.keys: keystores (the Ethereum Foundation vectors and our own), env keys, errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from adapters.keys import (
    Curve,
    EnvKeySource,
    KeySourceError,
    KeystoreSource,
    SecretKey,
    address_of,
    load_key,
)
from tests.conftest import load_shared_vector

VECTORS = "peer/ethereum-tests/keystore_basic_tests.json"
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
PASSWORD = "correct horse battery staple"


def _vectors() -> dict[str, Any]:
    data: dict[str, Any] = load_shared_vector(VECTORS)
    return data


@pytest.fixture(name="keystore")
def _keystore(tmp_path: Path) -> Path:
    """A keystore written by eth-account for KEY under PASSWORD (scrypt n=2: fast, not safe)."""
    path = tmp_path / "relayer.json"
    path.write_text(json.dumps(Account.encrypt(KEY, PASSWORD, kdf="scrypt", iterations=2)))
    return path


def _ids() -> list[str]:
    return ["test1", "test2", "python_generated_test_with_odd_iv", "evilnonce", "mycrypto"]


@pytest.mark.vectors
@pytest.mark.parametrize("name", _ids())
def test_ethereum_keystore_vectors(name: str, tmp_path: Path) -> None:
    """Every keystore of ethereum/tests KeyStoreTests decrypts to its private key."""
    vector = _vectors().get(name)
    if vector is None:
        pytest.skip(f"{name} is not in {VECTORS}")
    path = tmp_path / "k.json"
    path.write_text(json.dumps(vector["json"]))
    source = KeystoreSource(path, password_env="KS_PASSWORD")
    key = load_key(source, environ={"KS_PASSWORD": vector["password"]})
    assert key.reveal().hex() == vector["priv"]


@pytest.mark.vectors
def test_vector_wrong_password(tmp_path: Path) -> None:
    """A vector with a wrong password is a MAC mismatch, reported without the password."""
    vector = _vectors()["test1"]
    path = tmp_path / "k.json"
    path.write_text(json.dumps(vector["json"]))
    with pytest.raises(KeySourceError, match="wrong password") as info:
        load_key(KeystoreSource(path, password_env="P"), environ={"P": "not-the-password"})
    assert "not-the-password" not in str(info.value)


def test_own_keystore_password_env(keystore: Path) -> None:
    """A keystore made with eth-account loads with the password from an env var."""
    key = load_key(KeystoreSource(keystore, password_env="PW"), environ={"PW": PASSWORD})
    assert key.reveal() == KEY
    assert address_of(key) == Account.from_key(KEY).address


def test_own_keystore_password_file(keystore: Path, tmp_path: Path) -> None:
    """A password file's one trailing newline is not part of the password."""
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD + "\n")
    assert load_key(KeystoreSource(keystore, password_file=pw)).reveal() == KEY


def test_wrong_password(keystore: Path) -> None:
    """A wrong password says so, names the file and does not show the password."""
    with pytest.raises(KeySourceError) as info:
        load_key(KeystoreSource(keystore, password_env="PW"), environ={"PW": "hunter2"})
    message = str(info.value)
    assert message == f"keystore {keystore}: wrong password (MAC mismatch)"
    assert "hunter2" not in message


def test_keystore_missing(tmp_path: Path) -> None:
    """A missing keystore file is named."""
    path = tmp_path / "nope.json"
    with pytest.raises(KeySourceError, match="file not found") as info:
        load_key(KeystoreSource(path, password_env="PW"), environ={"PW": "x"})
    assert str(path) in str(info.value)


def test_password_env_unset(keystore: Path) -> None:
    """An unset password variable is named."""
    with pytest.raises(KeySourceError, match="environment variable PW: is not set"):
        load_key(KeystoreSource(keystore, password_env="PW"), environ={})


def test_password_file_missing(keystore: Path, tmp_path: Path) -> None:
    """A missing password file is named."""
    with pytest.raises(KeySourceError, match=r"password file .*: file not found"):
        load_key(KeystoreSource(keystore, password_file=tmp_path / "pw"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a keystore: the JSON is not an object"),
        (b'{"version": 3}', "not a keystore"),
        (b'{"version": 4, "crypto": {}}', "not a (usable )?keystore"),
    ],
    ids=["bad-json", "array", "no-crypto", "version-4"],
)
def test_bad_keystore_files(tmp_path: Path, content: bytes, expected: str) -> None:
    """Files that are not keystores give a typed error naming the problem."""
    path = tmp_path / "k.json"
    path.write_bytes(content)
    with pytest.raises(KeySourceError, match=expected):
        load_key(KeystoreSource(path, password_env="PW"), environ={"PW": "x"})


def test_env_hex_key() -> None:
    """An env var holds the key as hex, with or without 0x and surrounding whitespace."""
    for text in (KEY.hex(), "0x" + KEY.hex(), f"  0x{KEY.hex()}\n"):
        assert load_key(EnvKeySource("RELAYER_KEY"), environ={"RELAYER_KEY": text}).reveal() == KEY


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "is not set"),
        ("", "is empty"),
        ("0x", "is empty"),
        ("zz" * 32, "is not a hex private key"),
        ("ab" * 31, "holds 31 bytes, not a 32-byte private key"),
        ("ab" * 33, "holds 33 bytes"),
        ("00" * 32, "not a valid secp256k1 private key"),
        ("ff" * 32, "not a valid secp256k1 private key"),
    ],
    ids=["unset", "empty", "bare-0x", "not-hex", "short", "long", "zero", "over-order"],
)
def test_env_key_errors(value: str | None, expected: str) -> None:
    """Each way an env key can be wrong has its own message, which never shows the value."""
    environ = {} if value is None else {"K": value}
    with pytest.raises(KeySourceError, match=expected) as info:
        load_key(EnvKeySource("K"), environ=environ)
    assert str(info.value).startswith("environment variable K: ")
    if value:
        assert value.strip() not in str(info.value)


def test_sm2_range() -> None:
    """A key valid for secp256k1 can be out of range for SM2 (its order is smaller)."""
    key = (0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123).to_bytes(32, "big")
    environ = {"K": key.hex()}
    assert load_key(EnvKeySource("K"), environ=environ).reveal() == key
    with pytest.raises(KeySourceError, match="not a valid sm2 private key"):
        load_key(EnvKeySource("K"), curve=Curve.SM2, environ=environ)


def test_secret_key_never_shows_itself() -> None:
    """repr, str, f-strings and pickling never expose the key."""
    key = SecretKey(KEY)
    for text in (repr(key), str(key), f"{key}", f"{key!r}", repr([key])):
        assert KEY.hex() not in text
        assert "redacted" in text
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert key == SecretKey(KEY)
    assert key != SecretKey(b"\x01" * 32)
