"""Relayer and sender private keys: from an encrypted keystore file or an environment variable.

Two sources, as the configuration names them (``relay/config.py``):

- :class:`KeystoreSource`: a Web3 Secret Storage (v3) keystore, the format geth, ``cast wallet``
  and ``eth_account.Account.encrypt`` write, decrypted with ``eth_account.Account.decrypt``; the
  password comes from an environment variable or from a file (one trailing newline dropped).
- :class:`EnvKeySource`: an environment variable holding the key as 64 hex digits (``0x``
  optional), for development chains and containers whose secret store sets the variable.

The key is returned as a :class:`SecretKey`, whose ``repr`` and ``str`` never show it; every
:class:`KeySourceError` names the source (file path or variable name) and what is wrong, never
the key or the password.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from eth_account import Account

KEY_BYTES: Final = 32
MAX_KEYSTORE_BYTES: Final = 64 * 1024
MAX_PASSWORD_FILE_BYTES: Final = 64 * 1024


class Curve(StrEnum):
    """The curve a key is for: the valid range is 1 .. order-1."""

    SECP256K1 = "secp256k1"
    SM2 = "sm2"

    @property
    def order(self) -> int:
        if self is Curve.SM2:
            return 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
        return 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class KeySourceError(Exception):
    """A key could not be loaded; the message names the source, never the key or password."""

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(f"{source}: {message}")
        self.reason = message
        self.source = source


@dataclass(frozen=True, slots=True)
class KeystoreSource:
    """An encrypted keystore file and where its password comes from (exactly one of the two)."""

    path: Path
    password_env: str | None = None
    password_file: Path | None = None

    def describe(self) -> str:
        return f"keystore {self.path}"


@dataclass(frozen=True, slots=True)
class EnvKeySource:
    """An environment variable holding the key in hex."""

    env: str

    def describe(self) -> str:
        return f"environment variable {self.env}"


KeySource = KeystoreSource | EnvKeySource


class SecretKey:
    """A 32-byte private key that does not print itself. ``reveal()`` gives the bytes."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        self._raw = bytes(raw)

    def reveal(self) -> bytes:
        return self._raw

    def __repr__(self) -> str:
        return "SecretKey(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash((SecretKey, self._raw))

    def __reduce__(self) -> str | tuple[object, ...]:
        # no pickling into caches, queues or other processes
        raise TypeError("a SecretKey cannot be pickled")


def load_key(
    source: KeySource,
    *,
    curve: Curve = Curve.SECP256K1,
    environ: Mapping[str, str] | None = None,
) -> SecretKey:
    """Load and check the key; raises :class:`KeySourceError`. ``environ`` defaults to
    ``os.environ``."""
    env = os.environ if environ is None else environ
    if isinstance(source, EnvKeySource):
        raw = _from_env(source, env)
    else:
        raw = _from_keystore(source, env)
    return SecretKey(check_private_key(raw, curve, what=source.describe()))


def check_private_key(raw: bytes, curve: Curve, *, what: str) -> bytes:
    """``raw`` if it is a valid private key for ``curve``, else :class:`KeySourceError`."""
    if len(raw) != KEY_BYTES:
        raise KeySourceError(f"the key is {len(raw)} bytes, not {KEY_BYTES}", source=what)
    if not 0 < int.from_bytes(raw, "big") < curve.order:
        raise KeySourceError(f"the key is not a valid {curve.value} private key", source=what)
    return raw


def _from_env(source: EnvKeySource, env: Mapping[str, str]) -> bytes:
    what = source.describe()
    value = env.get(source.env)
    if value is None:
        raise KeySourceError("is not set", source=what)
    text = value.strip()
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    if not text:
        raise KeySourceError("is empty", source=what)
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise KeySourceError("is not a hex private key", source=what) from None
    if len(raw) != KEY_BYTES:
        raise KeySourceError(
            f"holds {len(raw)} bytes, not a {KEY_BYTES}-byte private key", source=what
        )
    return raw


def _from_keystore(source: KeystoreSource, env: Mapping[str, str]) -> bytes:
    what = source.describe()
    document = _read_keystore(source.path, what)
    password = _password(source, env)
    try:
        raw = Account.decrypt(document, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeySourceError("wrong password (MAC mismatch)", source=what) from None
        raise KeySourceError(_keystore_problem(exc), source=what) from None
    except (KeyError, TypeError, AttributeError, NotImplementedError) as exc:
        raise KeySourceError(_keystore_problem(exc), source=what) from None
    return bytes(raw)


def _keystore_problem(exc: BaseException) -> str:
    # eth-keyfile's messages name fields and versions, never key material or the password.
    if isinstance(exc, KeyError):
        return f"not a keystore: field {exc.args[0]!r} is missing"
    detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return f"not a usable keystore: {detail}"


def _read_keystore(path: Path, what: str) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEYSTORE_BYTES + 1)
    except FileNotFoundError:
        raise KeySourceError("file not found", source=what) from None
    except OSError as exc:
        raise KeySourceError(f"cannot read: {exc.strerror or exc}", source=what) from None
    if len(data) > MAX_KEYSTORE_BYTES:
        raise KeySourceError(f"larger than {MAX_KEYSTORE_BYTES} bytes", source=what)
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line is not None else ""
        raise KeySourceError(f"not JSON{where}", source=what) from None
    if not isinstance(document, dict):
        raise KeySourceError("not a keystore: the JSON is not an object", source=what)
    return document


def _password(source: KeystoreSource, env: Mapping[str, str]) -> str:
    if source.password_env is not None:
        value = env.get(source.password_env)
        if value is None:
            raise KeySourceError(
                "is not set (it holds the keystore password)",
                source=f"environment variable {source.password_env}",
            )
        return value
    if source.password_file is not None:
        return _read_password_file(source.password_file)
    raise KeySourceError("no password source (password_env or password_file)", source="keystore")


def _read_password_file(path: Path) -> str:
    what = f"password file {path}"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PASSWORD_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeySourceError("file not found", source=what) from None
    except OSError as exc:
        raise KeySourceError(f"cannot read: {exc.strerror or exc}", source=what) from None
    if len(data) > MAX_PASSWORD_FILE_BYTES:
        raise KeySourceError(f"larger than {MAX_PASSWORD_FILE_BYTES} bytes", source=what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeySourceError("not UTF-8 text", source=what) from None
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def address_of(key: SecretKey) -> str:
    """The Ethereum (keccak256 + secp256k1) checksummed address of ``key``."""
    return str(Account.from_key(key.reveal()).address)
