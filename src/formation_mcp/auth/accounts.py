"""Accounts administration (admins only): list, register, change roles, disable."""

from __future__ import annotations

from formation.mcp.v1 import accounts_pb2, auth_pb2

from formation_mcp import paging
from formation_mcp.auth import store
from formation_mcp.auth.keys import key_id, parse_public_key
from formation_mcp.auth.manager import check_public_key, to_account_message
from formation_mcp.auth.revocations import TOPIC as REVOCATION_TOPIC
from formation_mcp.auth.revocations import Revocations
from formation_mcp.changes import ChangeBus
from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.errors import AlreadyExists, InvalidArgument, NotFound
from formation_mcp.permissions import ADMIN, ROLES, USER

NAME_PREFIX = "accounts/"
UPDATABLE = ("roles", "disabled")


def parse_account_name(name: str, field: str = "name") -> str:
    kid = name.removeprefix(NAME_PREFIX)
    if not name or kid == name or not kid or "/" in kid:
        raise InvalidArgument.for_field(
            field, f"{name!r} is not an account name, accounts/{{key_id}}"
        )
    return kid


def check_roles(roles: list[str], field: str) -> tuple[str, ...]:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InvalidArgument.for_field(
            field, f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}"
        )
    return tuple(dict.fromkeys(roles))


class AccountManager:
    def __init__(self, database: Database, bus: ChangeBus, revocations: Revocations) -> None:
        self._db = database
        self._bus = bus
        self._revocations = revocations

    async def bootstrap_admins(self, public_keys: tuple[str, ...]) -> None:
        """FMCP_ADMIN_KEYS: these keys get an account with the admin role (created if needed)."""
        for text in public_keys:
            public_key = parse_public_key(text)
            kid = key_id(public_key)
            async with self._db.write() as conn:
                account = await store.get_account(conn, kid)
                if account is None:
                    await store.insert_account(conn, kid, public_key, (ADMIN,), now_us())
                elif ADMIN not in account.roles:
                    await store.update_account(
                        conn, kid, roles=(*account.roles, ADMIN), update_time=now_us()
                    )

    async def list_page(self, page_size: int, page_token: str) -> accounts_pb2.ListAccountsResponse:
        size = paging.page_size(page_size)
        key = paging.query_key("accounts")
        after = paging.decode_token(page_token, key) if page_token else None
        async with self._db.read() as conn:
            rows = await store.list_accounts(conn, after, size + 1)
        page = rows[:size]
        token = paging.encode_token(page[-1].key_id, key) if len(rows) > size else ""
        return accounts_pb2.ListAccountsResponse(
            accounts=[to_account_message(r) for r in page], next_page_token=token
        )

    async def get(self, name: str) -> auth_pb2.Account:
        kid = parse_account_name(name)
        async with self._db.read() as conn:
            row = await store.get_account(conn, kid)
        if row is None:
            raise NotFound(f"{name} not found", reason="ACCOUNT_NOT_FOUND", metadata={"name": name})
        return to_account_message(row)

    async def create(self, account: auth_pb2.Account) -> auth_pb2.Account:
        check_public_key(account.public_key, "account.public_key")
        roles = check_roles(list(account.roles), "account.roles") or (USER,)
        kid = key_id(account.public_key)
        async with self._db.write() as conn:
            created = await store.insert_account(conn, kid, account.public_key, roles, now_us())
            if created and account.disabled:
                await store.update_account(conn, kid, disabled=True)
            row = await store.get_account(conn, kid)
        if not created or row is None:
            raise AlreadyExists(
                f"accounts/{kid} exists already",
                reason="ACCOUNT_EXISTS",
                metadata={"name": f"accounts/{kid}"},
            )
        return to_account_message(row)

    async def update(self, account: auth_pb2.Account, paths: list[str]) -> auth_pb2.Account:
        kid = parse_account_name(account.name, "account.name")
        fields = paths or list(UPDATABLE)
        bad = [p for p in fields if p not in UPDATABLE]
        if bad:
            raise InvalidArgument.for_field(
                "update_mask", f"cannot update {', '.join(bad)}; updatable: roles, disabled"
            )
        changes: dict[str, object] = {}
        if "roles" in fields:
            roles = check_roles(list(account.roles), "account.roles")
            if not roles:
                raise InvalidArgument.for_field("account.roles", "at least one role is needed")
            changes["roles"] = roles
        if "disabled" in fields:
            changes["disabled"] = account.disabled
        now = now_us()
        async with self._db.write() as conn:
            row = await store.get_account(conn, kid)
            if row is None:
                raise NotFound(
                    f"{account.name} not found",
                    reason="ACCOUNT_NOT_FOUND",
                    metadata={"name": account.name},
                )
            # Tokens carry roles: any change ends the account's current tokens (clients refresh).
            await store.update_account(
                conn, kid, **changes, update_time=now, tokens_valid_after=now
            )
            payload = self._revocations.account_revoked(kid, now)
            await self._bus.announce_in_transaction(conn, REVOCATION_TOPIC, payload)
            updated = await store.get_account(conn, kid)
        self._bus.committed(REVOCATION_TOPIC, payload)
        assert updated is not None
        return to_account_message(updated)
