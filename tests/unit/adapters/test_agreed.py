"""``adapters.base.agreed``: a state read without evidence is confirmed by every endpoint
that answers, never by one endpoint alone."""

from __future__ import annotations

import pytest

from adapters.base import ChainUnavailable, ConfigurationError, UnexpectedResponse, agreed


def _asker(answers: dict[str, int | Exception]):  # type: ignore[no-untyped-def]
    async def ask(name: str) -> int:
        value = answers[name]
        if isinstance(value, Exception):
            raise value
        return value

    return ask


async def test_all_answering_endpoints_agree() -> None:
    ask = _asker({"a": 2, "b": 2, "c": ChainUnavailable("down", chain="x", endpoint="c")})
    assert await agreed("x", ["a", "b", "c"], ask, what="sentState") == 2


async def test_a_disagreement_is_a_retryable_error_naming_the_endpoints() -> None:
    ask = _asker({"liar": 2, "honest": 1})
    with pytest.raises(UnexpectedResponse, match="disagree") as caught:
        await agreed("x", ["liar", "honest"], ask, what="sentState")
    assert "liar=2" in str(caught.value)
    assert "honest=1" in str(caught.value)
    assert caught.value.retryable


async def test_no_answer_at_all_is_an_error() -> None:
    ask = _asker({"a": ChainUnavailable("down", chain="x", endpoint="a")})
    with pytest.raises(UnexpectedResponse, match="no endpoint answered"):
        await agreed("x", ["a"], ask, what="sentState")


async def test_a_configuration_error_is_raised_at_once() -> None:
    ask = _asker({"a": ConfigurationError("wrong chain", chain="x", endpoint="a"), "b": 1})
    with pytest.raises(ConfigurationError):
        await agreed("x", ["a", "b"], ask, what="sentState")
