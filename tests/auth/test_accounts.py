"""AccountsService as an admin: register, read, list with paging, change roles and disable."""

from __future__ import annotations

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import accounts_pb2, auth_pb2
from google.protobuf import field_mask_pb2
from tests.support.auth import AdminServer, challenge_for, signed_login
from tests.support.errors import error_info, field_violations, refused

from formation_mcp.auth.keys import key_id, public_bytes

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT


def new_public_key() -> bytes:
    return public_bytes(Ed25519PrivateKey.generate())


async def create(
    admin: AdminServer, public_key: bytes, roles: list[str] | None = None, disabled: bool = False
) -> auth_pb2.Account:
    account: auth_pb2.Account = await admin.accounts.CreateAccount(
        accounts_pb2.CreateAccountRequest(
            account=auth_pb2.Account(public_key=public_key, roles=roles or [], disabled=disabled)
        ),
        metadata=admin.md,
    )
    return account


async def get(admin: AdminServer, name: str) -> auth_pb2.Account:
    account: auth_pb2.Account = await admin.accounts.GetAccount(
        accounts_pb2.GetAccountRequest(name=name), metadata=admin.md
    )
    return account


# -- create and get -----------------------------------------------------------------------------


async def test_create_account_registers_a_key_as_a_user(admin: AdminServer) -> None:
    public_key = new_public_key()
    created = await create(admin, public_key)
    kid = key_id(public_key)
    assert created.name == f"accounts/{kid}"
    assert created.key_id == kid
    assert created.public_key == public_key
    assert list(created.roles) == ["user"]
    assert not created.disabled
    assert created.create_time.seconds > 0
    assert await get(admin, created.name) == created


async def test_create_account_keeps_the_given_roles_once_each(admin: AdminServer) -> None:
    created = await create(admin, new_public_key(), roles=["viewer", "viewer"])
    assert list(created.roles) == ["viewer"]


async def test_creating_an_account_twice_is_already_exists(admin: AdminServer) -> None:
    public_key = new_public_key()
    created = await create(admin, public_key)
    error = await refused(
        create(admin, public_key, roles=["admin"]),
        grpc.StatusCode.ALREADY_EXISTS,
        "ACCOUNT_EXISTS",
    )
    assert error_info(error).metadata["name"] == created.name
    assert list((await get(admin, created.name)).roles) == ["user"]


async def test_an_account_created_by_login_already_exists(admin: AdminServer) -> None:
    key, _session = await admin.new_user()
    await refused(
        create(admin, public_bytes(key)), grpc.StatusCode.ALREADY_EXISTS, "ACCOUNT_EXISTS"
    )


@pytest.mark.parametrize("size", [0, 31, 33, 64])
async def test_create_account_wants_a_32_byte_public_key(admin: AdminServer, size: int) -> None:
    error = await refused(create(admin, b"\x02" * size), INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert field_violations(error) == ["account.public_key"]


async def test_create_account_refuses_an_unknown_role(admin: AdminServer) -> None:
    public_key = new_public_key()
    error = await refused(
        create(admin, public_key, roles=["user", "root"]), INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert field_violations(error) == ["account.roles"]
    await refused(
        get(admin, f"accounts/{key_id(public_key)}"), grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND"
    )


async def test_an_account_created_disabled_cannot_log_in(admin: AdminServer) -> None:
    key = Ed25519PrivateKey.generate()
    created = await create(admin, public_bytes(key), disabled=True)
    assert created.disabled
    challenge = await challenge_for(admin.auth, key)
    await refused(
        admin.auth.Login(signed_login(challenge, key)),
        grpc.StatusCode.PERMISSION_DENIED,
        "ACCOUNT_DISABLED",
    )


async def test_get_account_of_an_unknown_key_is_not_found(admin: AdminServer) -> None:
    name = f"accounts/{key_id(new_public_key())}"
    error = await refused(get(admin, name), grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    assert error_info(error).metadata["name"] == name


@pytest.mark.parametrize("name", ["", "abc", "accounts/", "accounts/a/b", "users/abc"])
async def test_get_account_wants_an_account_name(admin: AdminServer, name: str) -> None:
    error = await refused(get(admin, name), INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert field_violations(error) == ["name"]


# -- list ---------------------------------------------------------------------------------------


async def list_all(admin: AdminServer, page_size: int) -> list[auth_pb2.Account]:
    accounts: list[auth_pb2.Account] = []
    token = ""
    while True:
        page = await admin.accounts.ListAccounts(
            accounts_pb2.ListAccountsRequest(page_size=page_size, page_token=token),
            metadata=admin.md,
        )
        assert len(page.accounts) <= page_size
        accounts.extend(page.accounts)
        token = page.next_page_token
        if not token:
            return accounts


async def test_list_accounts_pages_through_every_account_in_key_id_order(
    admin: AdminServer,
) -> None:
    created = {(await create(admin, new_public_key())).name for _ in range(5)}
    listed = await list_all(admin, page_size=2)
    names = [a.name for a in listed]
    assert len(names) == len(set(names)), "no account twice"
    assert created | {f"accounts/{key_id(public_bytes(admin.key))}"} <= set(names)
    key_ids = [a.key_id for a in listed]
    assert key_ids == sorted(key_ids)
    assert listed == await list_all(admin, page_size=1000)


async def test_list_accounts_last_page_has_no_token(admin: AdminServer) -> None:
    everything = await admin.accounts.ListAccounts(
        accounts_pb2.ListAccountsRequest(page_size=1000), metadata=admin.md
    )
    assert everything.next_page_token == ""
    first = await admin.accounts.ListAccounts(
        accounts_pb2.ListAccountsRequest(page_size=1), metadata=admin.md
    )
    assert len(first.accounts) == 1
    assert first.next_page_token if len(everything.accounts) > 1 else not first.next_page_token


@pytest.mark.parametrize(
    ("page_size", "page_token", "field"),
    [(-1, "", "page_size"), (2, "not-a-token", "page_token")],
)
async def test_list_accounts_refuses_bad_paging(
    admin: AdminServer, page_size: int, page_token: str, field: str
) -> None:
    error = await refused(
        admin.accounts.ListAccounts(
            accounts_pb2.ListAccountsRequest(page_size=page_size, page_token=page_token),
            metadata=admin.md,
        ),
        INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert field_violations(error) == [field]


# -- update -------------------------------------------------------------------------------------


async def test_update_account_changes_roles(admin: AdminServer) -> None:
    created = await create(admin, new_public_key())
    updated = await admin.update(created.name, ["roles"], roles=["viewer", "user"])
    assert list(updated.roles) == ["viewer", "user"]
    assert not updated.disabled
    assert await get(admin, created.name) == updated


async def test_update_account_changes_only_the_fields_in_the_mask(admin: AdminServer) -> None:
    created = await create(admin, new_public_key(), roles=["viewer"])
    updated = await admin.update(created.name, ["disabled"], roles=["admin"], disabled=True)
    assert updated.disabled
    assert list(updated.roles) == ["viewer"]


@pytest.mark.parametrize("roles", [["superuser"], ["user", "Admin"], [""]])
async def test_update_account_refuses_an_unknown_role(admin: AdminServer, roles: list[str]) -> None:
    created = await create(admin, new_public_key())
    error = await refused(
        admin.update(created.name, ["roles"], roles=roles), INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert field_violations(error) == ["account.roles"]
    assert list((await get(admin, created.name)).roles) == ["user"]


async def test_update_account_refuses_an_empty_role_list(admin: AdminServer) -> None:
    created = await create(admin, new_public_key())
    error = await refused(
        admin.update(created.name, ["roles"], roles=[]), INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert field_violations(error) == ["account.roles"]


@pytest.mark.parametrize("path", ["public_key", "key_id", "name", "create_time"])
async def test_update_account_refuses_fields_outside_roles_and_disabled(
    admin: AdminServer, path: str
) -> None:
    created = await create(admin, new_public_key())
    error = await refused(
        admin.update(created.name, [path], roles=["user"]), INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert field_violations(error) == ["update_mask"]


async def test_update_account_of_an_unknown_key_is_not_found(admin: AdminServer) -> None:
    await refused(
        admin.update(f"accounts/{key_id(new_public_key())}", ["disabled"], disabled=True),
        grpc.StatusCode.NOT_FOUND,
        "ACCOUNT_NOT_FOUND",
    )


async def test_update_account_wants_an_account_name(admin: AdminServer) -> None:
    error = await refused(
        admin.accounts.UpdateAccount(
            accounts_pb2.UpdateAccountRequest(
                account=auth_pb2.Account(name="nobody", disabled=True),
                update_mask=field_mask_pb2.FieldMask(paths=["disabled"]),
            ),
            metadata=admin.md,
        ),
        INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert field_violations(error) == ["account.name"]


async def test_a_promoted_user_can_administer_after_refreshing(admin: AdminServer) -> None:
    _key, user = await admin.new_user()
    await admin.update(user.account.name, ["roles"], roles=["admin"])
    promoted: auth_pb2.Session = await admin.auth.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=user.refresh_token)
    )
    page = await admin.accounts.ListAccounts(
        accounts_pb2.ListAccountsRequest(page_size=1),
        metadata=(("authorization", f"Bearer {promoted.access_token}"),),
    )
    assert len(page.accounts) == 1
