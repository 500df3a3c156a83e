"""Authorization: roles and per-RPC permissions, ownership of operations, admin-only RPCs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import (
    accounts_pb2,
    accounts_pb2_grpc,
    auth_pb2,
    operations_pb2,
    operations_pb2_grpc,
)
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tests.support.auth import AdminServer, AuthStub, Gate, Md, who_am_i
from tests.support.errors import check_refusal, error_info, refused
from tests.support.operations import new_operation

from formation_mcp.app import Application
from formation_mcp.auth import refresh_tokens
from formation_mcp.auth.keys import public_bytes
from formation_mcp.client.auth import bearer, login

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
OpsStub: TypeAlias = "operations_pb2_grpc.OperationsServiceAsyncStub"


async def make_viewer(admin: AdminServer) -> tuple[auth_pb2.Session, auth_pb2.Session]:
    """A user demoted to viewer by the admin: (the session before, the session refreshed after)."""
    _key, user = await admin.new_user()
    updated = await admin.update(user.account.name, ["roles"], roles=["viewer"])
    assert list(updated.roles) == ["viewer"]
    viewer: auth_pb2.Session = await admin.auth.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=user.refresh_token)
    )
    return user, viewer


# -- viewers ------------------------------------------------------------------------------------


async def test_a_role_change_takes_effect_on_refresh(admin: AdminServer) -> None:
    before, viewer = await make_viewer(admin)
    assert list(viewer.account.roles) == ["viewer"]
    assert list((await who_am_i(admin.auth, viewer.access_token)).roles) == ["viewer"]
    await refused(who_am_i(admin.auth, before.access_token), UNAUTHENTICATED, "TOKEN_REVOKED")


async def test_a_viewer_cannot_cancel_an_operation(admin: AdminServer) -> None:
    _before, viewer = await make_viewer(admin)
    name = await new_operation(admin.app, viewer.account.name)
    error = await refused(
        admin.operations.CancelOperation(
            operations_pb2.CancelOperationRequest(name=name), metadata=bearer(viewer.access_token)
        ),
        PERMISSION_DENIED,
        "MISSING_PERMISSION",
    )
    info = error_info(error)
    assert info.metadata["permission"] == "operations.write"
    assert info.metadata["method"] == "/formation.mcp.v1.OperationsService/CancelOperation"


async def test_a_viewer_cannot_delete_an_operation(admin: AdminServer) -> None:
    _before, viewer = await make_viewer(admin)
    name = await new_operation(admin.app, viewer.account.name)
    error = await refused(
        admin.operations.DeleteOperation(
            operations_pb2.DeleteOperationRequest(name=name), metadata=bearer(viewer.access_token)
        ),
        PERMISSION_DENIED,
        "MISSING_PERMISSION",
    )
    assert error_info(error).metadata["permission"] == "operations.write"


async def test_a_viewer_can_read_its_operations(admin: AdminServer) -> None:
    _before, viewer = await make_viewer(admin)
    name = await new_operation(admin.app, viewer.account.name)
    md = bearer(viewer.access_token)
    assert (
        await admin.operations.GetOperation(
            operations_pb2.GetOperationRequest(name=name), metadata=md
        )
    ).name == name
    listed = await admin.operations.ListOperations(
        operations_pb2.ListOperationsRequest(), metadata=md
    )
    assert [op.name for op in listed.operations] == [name]


async def test_a_viewer_that_logs_in_again_is_still_a_viewer(admin: AdminServer) -> None:
    key, user = await admin.new_user()
    await admin.update(user.account.name, ["roles"], roles=["viewer"])
    again = await login(admin.channel, key)
    assert list(again.account.roles) == ["viewer"]
    name = await new_operation(admin.app, again.account.name)
    await refused(
        admin.operations.CancelOperation(
            operations_pb2.CancelOperationRequest(name=name), metadata=bearer(again.access_token)
        ),
        PERMISSION_DENIED,
        "MISSING_PERMISSION",
    )


# -- ownership: another user's operation does not exist for you --------------------------------


def _calls(stub: OpsStub, name: str, md: Md) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "get": lambda: stub.GetOperation(
            operations_pb2.GetOperationRequest(name=name), metadata=md
        ),
        "cancel": lambda: stub.CancelOperation(
            operations_pb2.CancelOperationRequest(name=name), metadata=md
        ),
        "delete": lambda: stub.DeleteOperation(
            operations_pb2.DeleteOperationRequest(name=name), metadata=md
        ),
        "wait": lambda: stub.WaitOperation(
            operations_pb2.WaitOperationRequest(
                name=name, timeout=duration_pb2.Duration(nanos=10_000_000)
            ),
            metadata=md,
        ),
    }


@pytest.mark.parametrize("rpc", ["get", "cancel", "delete", "wait"])
async def test_another_users_operation_is_not_found(
    app: Application, operations_stub: OpsStub, as_account: Md, rpc: str
) -> None:
    other = await login_other(app)
    name = await new_operation(app, other.account.name)
    await refused(
        _calls(operations_stub, name, as_account)[rpc](), NOT_FOUND, "OPERATION_NOT_FOUND"
    )


@pytest.mark.parametrize("rpc", ["get", "cancel", "delete", "wait"])
async def test_another_users_operation_looks_exactly_like_a_missing_one(
    app: Application, operations_stub: OpsStub, as_account: Md, rpc: str
) -> None:
    other = await login_other(app)
    name = await new_operation(app, other.account.name)
    missing = name[:-4] + ("0000" if not name.endswith("0000") else "1111")
    seen = await refused(
        _calls(operations_stub, name, as_account)[rpc](), NOT_FOUND, "OPERATION_NOT_FOUND"
    )
    absent = await refused(
        _calls(operations_stub, missing, as_account)[rpc](), NOT_FOUND, "OPERATION_NOT_FOUND"
    )
    assert seen.details() == (absent.details() or "").replace(missing, name)


async def test_another_users_operation_is_not_listed(
    app: Application, operations_stub: OpsStub, account: str, as_account: Md
) -> None:
    other = await login_other(app)
    await new_operation(app, other.account.name)
    mine = await new_operation(app, account)
    listed = await operations_stub.ListOperations(
        operations_pb2.ListOperationsRequest(), metadata=as_account
    )
    assert [op.name for op in listed.operations] == [mine]


async def test_an_admin_can_read_another_users_operation(admin: AdminServer) -> None:
    _key, user = await admin.new_user()
    name = await new_operation(admin.app, user.account.name)
    operation = await admin.operations.GetOperation(
        operations_pb2.GetOperationRequest(name=name), metadata=admin.md
    )
    assert operation.name == name


async def login_other(app: Application) -> auth_pb2.Session:
    async with grpc.aio.insecure_channel(app.grpc.address) as channel:
        return await login(channel, Ed25519PrivateKey.generate())


# -- admin-only RPCs ----------------------------------------------------------------------------


def _account_calls(
    stub: accounts_pb2_grpc.AccountsServiceAsyncStub, account: str, md: Md
) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "ListAccounts": lambda: stub.ListAccounts(accounts_pb2.ListAccountsRequest(), metadata=md),
        "GetAccount": lambda: stub.GetAccount(
            accounts_pb2.GetAccountRequest(name=account), metadata=md
        ),
        "CreateAccount": lambda: stub.CreateAccount(
            accounts_pb2.CreateAccountRequest(
                account=auth_pb2.Account(
                    public_key=public_bytes(Ed25519PrivateKey.generate()), roles=["admin"]
                )
            ),
            metadata=md,
        ),
        "UpdateAccount": lambda: stub.UpdateAccount(
            accounts_pb2.UpdateAccountRequest(
                account=auth_pb2.Account(name=account, roles=["admin"])
            ),
            metadata=md,
        ),
    }


@pytest.mark.parametrize("rpc", ["ListAccounts", "GetAccount", "CreateAccount", "UpdateAccount"])
async def test_a_user_cannot_call_the_accounts_service(
    accounts_stub: accounts_pb2_grpc.AccountsServiceAsyncStub,
    auth_stub: AuthStub,
    session: auth_pb2.Session,
    as_account: Md,
    rpc: str,
) -> None:
    error = await refused(
        _account_calls(accounts_stub, session.account.name, as_account)[rpc](),
        PERMISSION_DENIED,
        "MISSING_PERMISSION",
    )
    info = error_info(error)
    assert info.metadata["permission"] == "accounts.admin"
    assert info.metadata["method"] == f"/formation.mcp.v1.AccountsService/{rpc}"
    assert list((await who_am_i(auth_stub, session.access_token)).roles) == ["user"]


@pytest.mark.parametrize("rpc", ["ListAccounts", "GetAccount", "CreateAccount", "UpdateAccount"])
async def test_the_accounts_service_wants_a_token(
    accounts_stub: accounts_pb2_grpc.AccountsServiceAsyncStub, account: str, rpc: str
) -> None:
    await refused(
        _account_calls(accounts_stub, account, ())[rpc](), UNAUTHENTICATED, "TOKEN_MISSING"
    )


async def test_a_viewer_cannot_call_the_accounts_service(admin: AdminServer) -> None:
    _before, viewer = await make_viewer(admin)
    await refused(
        admin.accounts.ListAccounts(
            accounts_pb2.ListAccountsRequest(), metadata=bearer(viewer.access_token)
        ),
        PERMISSION_DENIED,
        "MISSING_PERMISSION",
    )


async def test_health_needs_no_token(channel: grpc.aio.Channel) -> None:
    response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert response.status == health_pb2.HealthCheckResponse.SERVING


# -- races ---------------------------------------------------------------------------------------


async def test_an_account_disabled_while_it_logs_in_gets_no_working_token(
    admin: AdminServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving is forced: the login is held after its account check and before its
    tokens are issued, while an admin disables the account."""
    key, user = await admin.new_user()
    gate = Gate(refresh_tokens.mint)
    monkeypatch.setattr(refresh_tokens, "mint", gate)
    logged_in, disabled = await gate.run_between(
        login(admin.channel, key),
        lambda: admin.update(user.account.name, ["disabled"], disabled=True),
    )
    assert isinstance(disabled, auth_pb2.Account) and disabled.disabled, disabled
    if isinstance(logged_in, BaseException):  # refusing the login is as good as a dead token
        check_refusal(logged_in, PERMISSION_DENIED, "ACCOUNT_DISABLED")
        return
    await refused(who_am_i(admin.auth, logged_in.access_token), UNAUTHENTICATED, "TOKEN_REVOKED")
