"""Database outages become UNAVAILABLE; every other error stays what it is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)

from formation_mcp.db.database import _unavailable_on_outage
from formation_mcp.errors import Unavailable

Factory = Callable[[], BaseException]

OUTAGES = [
    pytest.param(
        lambda: OperationalError("SELECT 1", None, Exception("connection refused")),
        id="OperationalError",
    ),
    pytest.param(
        lambda: InterfaceError("SELECT 1", None, Exception("connection already closed")),
        id="InterfaceError",
    ),
    pytest.param(lambda: OSError("network is unreachable"), id="OSError"),
    pytest.param(lambda: ConnectionRefusedError(111, "refused"), id="ConnectionRefusedError"),
    pytest.param(lambda: ConnectionResetError(104, "reset"), id="ConnectionResetError"),
    pytest.param(
        lambda: DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True),
        id="DBAPIError-invalidated",
    ),
]
NOT_OUTAGES = [
    pytest.param(
        lambda: DBAPIError("SELECT 1", None, Exception("odd"), connection_invalidated=False),
        id="DBAPIError-not-invalidated",
    ),
    pytest.param(
        lambda: IntegrityError("INSERT", None, Exception("duplicate key")), id="IntegrityError"
    ),
    pytest.param(
        lambda: ProgrammingError("SELEC 1", None, Exception("syntax error")),
        id="ProgrammingError",
    ),
    pytest.param(lambda: ValueError("bad value"), id="ValueError"),
    pytest.param(lambda: KeyError("missing"), id="KeyError"),
    pytest.param(lambda: RuntimeError("boom"), id="RuntimeError"),
    pytest.param(asyncio.CancelledError, id="CancelledError"),
]


async def _raise_inside(exc: BaseException) -> None:
    async with _unavailable_on_outage():
        raise exc


@pytest.mark.parametrize("make", OUTAGES)
async def test_outage_becomes_unavailable(make: Factory) -> None:
    exc = make()
    with pytest.raises(Unavailable) as info:
        await _raise_inside(exc)
    assert info.value.code is grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("make", OUTAGES)
async def test_outage_reason_is_database_unavailable(make: Factory) -> None:
    exc = make()
    with pytest.raises(Unavailable) as info:
        await _raise_inside(exc)
    assert info.value.reason == "DATABASE_UNAVAILABLE"


@pytest.mark.parametrize("make", OUTAGES)
async def test_outage_keeps_the_original_as_cause(make: Factory) -> None:
    exc = make()
    with pytest.raises(Unavailable) as info:
        await _raise_inside(exc)
    assert info.value.__cause__ is exc


@pytest.mark.parametrize("make", OUTAGES)
async def test_outage_message_says_retry_later(make: Factory) -> None:
    exc = make()
    with pytest.raises(Unavailable) as info:
        await _raise_inside(exc)
    assert "retry later" in info.value.message


async def test_outage_status_code_is_unavailable() -> None:
    with pytest.raises(Unavailable) as info:
        await _raise_inside(OSError("down"))
    status = info.value.to_status()
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]


@pytest.mark.parametrize("make", NOT_OUTAGES)
async def test_other_errors_are_left_alone(make: Factory) -> None:
    exc = make()
    with pytest.raises(type(exc)) as info:
        await _raise_inside(exc)
    assert info.value is exc
    assert not isinstance(info.value, Unavailable)


async def test_unavailable_raised_inside_passes_through_unchanged() -> None:
    original = Unavailable("broker down", reason="BROKER_UNAVAILABLE")
    with pytest.raises(Unavailable) as info:
        await _raise_inside(original)
    assert info.value is original


async def test_no_error_runs_the_block() -> None:
    ran: list[str] = []
    async with _unavailable_on_outage():
        ran.append("body")
    assert ran == ["body"]
