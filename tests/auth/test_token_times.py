"""The time claims of access tokens (pure logic; over gRPC with the server's real key in
test_tokens.py)."""

from __future__ import annotations

from typing import Any

import pytest

from formation_mcp.auth.token_times import check_token_times
from formation_mcp.errors import Unauthenticated

NOW = 1_800_000_000
LEEWAY = 5
LIFETIME = 900


def claims(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"iat": NOW, "nbf": NOW, "exp": NOW + LIFETIME}
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def check(values: dict[str, Any], now: float = NOW) -> Any:
    return check_token_times(values, now, leeway=LEEWAY, max_lifetime=LIFETIME)


def refused(values: dict[str, Any], now: float = NOW) -> str:
    with pytest.raises(Unauthenticated) as caught:
        check(values, now)
    return caught.value.reason


def test_the_issuers_own_times_are_accepted() -> None:
    times = check(claims(iat_us=NOW * 1_000_000 + 123_456))
    assert (times.issued_at, times.expires_at) == (NOW * 1_000_000 + 123_456, NOW + LIFETIME)


def test_without_iat_us_the_issue_time_is_iat_in_microseconds() -> None:
    assert check(claims(nbf=None)).issued_at == NOW * 1_000_000


@pytest.mark.parametrize("claim", ["iat", "nbf", "exp"])
@pytest.mark.parametrize(
    "value",
    ["1800000000", 1_800_000_000.0, NOW + 0.5, True, False, "tomorrow", [NOW], -1, 0],
    ids=["string", "float", "fraction", "true", "false", "word", "list", "negative", "zero"],
)
def test_a_time_that_is_not_a_positive_json_integer_is_invalid(claim: str, value: Any) -> None:
    assert refused(claims(**{claim: value})) == "TOKEN_INVALID"


@pytest.mark.parametrize(
    "values",
    [
        claims(exp=NOW + LIFETIME + 1),
        claims(exp=NOW + 10**12),
        claims(exp=NOW),
        claims(exp=NOW - 1),
        claims(iat=NOW - 86400, nbf=NOW - 86400),
        claims(iat=1, nbf=1),
    ],
    ids=["a-second-too-long", "far-future-exp", "exp-at-iat", "exp-before-iat", "day-old", "epoch"],
)
def test_a_lifetime_beyond_the_longest_or_not_positive_is_invalid(values: dict[str, Any]) -> None:
    assert refused(values) == "TOKEN_INVALID"


@pytest.mark.parametrize(
    "nbf", [NOW - 1, NOW + LIFETIME, NOW + 10**12, 1], ids=["before-iat", "at-exp", "far", "epoch"]
)
def test_an_nbf_outside_iat_to_exp_is_invalid(nbf: int) -> None:
    assert refused(claims(nbf=nbf)) == "TOKEN_INVALID"


def test_an_iat_in_the_future_beyond_the_leeway_is_invalid() -> None:
    later = NOW + LEEWAY + 1
    assert refused(claims(iat=later, nbf=later, exp=later + 60)) == "TOKEN_INVALID"


def test_an_iat_within_the_leeway_is_accepted() -> None:
    later = NOW + LEEWAY
    assert check(claims(iat=later, nbf=later, exp=later + 60)).expires_at == later + 60


@pytest.mark.parametrize(
    "iat_us",
    ["1800000000000000", NOW * 1_000_000 + 0.5, True, (NOW + 1) * 1_000_000, NOW],
    ids=["string", "float", "true", "another-second", "seconds"],
)
def test_an_iat_us_that_is_not_iat_in_microseconds_is_invalid(iat_us: Any) -> None:
    assert refused(claims(iat_us=iat_us)) == "TOKEN_INVALID"


@pytest.mark.parametrize("claim", ["iat", "exp"])
def test_iat_and_exp_are_required(claim: str) -> None:
    assert refused(claims(**{claim: None})) == "TOKEN_INVALID"


def test_a_token_past_its_exp_is_expired() -> None:
    assert refused(claims(), now=NOW + LIFETIME + LEEWAY) == "TOKEN_EXPIRED"


def test_a_token_within_the_leeway_after_its_exp_is_accepted() -> None:
    assert check(claims(), now=NOW + LIFETIME + LEEWAY - 1).expires_at == NOW + LIFETIME
