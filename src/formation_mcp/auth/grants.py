"""Grants: every login session and every MCP host an account approved, listed and revocable
(`fmcp account sessions`), and audited from approval to revocation.

Revoking a grant revokes its refresh-token family and, through the revocation notices every
replica applies, every access token that names it (`sid`) at once.
"""

from __future__ import annotations

import logging
import re

from formation.mcp.v1 import auth_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp import paging
from formation_mcp.auth import grant_store, store
from formation_mcp.auth.grant_store import GrantRecord
from formation_mcp.auth.keys import account_name
from formation_mcp.auth.revocations import TOPIC as REVOCATION_TOPIC
from formation_mcp.auth.revocations import Revocations
from formation_mcp.changes import ChangeBus
from formation_mcp.clock import now_us, to_timestamp
from formation_mcp.db.database import Database
from formation_mcp.errors import InvalidArgument, NotFound
from formation_mcp.identity import Caller

log = logging.getLogger(__name__)

NAME_PREFIX = "grants/"
LOGIN_CLIENT_NAME = "fmcp login"
_TERM = re.compile(r'\s*(kind|state)\s*=\s*"?([A-Za-z_]+)"?\s*')
_KINDS = {"LOGIN": grant_store.LOGIN, "OAUTH": grant_store.OAUTH}
_KIND_ENUM = {grant_store.LOGIN: auth_pb2.Grant.LOGIN, grant_store.OAUTH: auth_pb2.Grant.OAUTH}
_STATE_ENUM = {
    grant_store.ACTIVE: auth_pb2.Grant.ACTIVE,
    grant_store.REVOKED: auth_pb2.Grant.REVOKED,
    grant_store.EXPIRED: auth_pb2.Grant.EXPIRED,
}
LOGOUT, REVOKED_BY_USER, REVOKED_BY_CLIENT = "logout", "revoked", "client"
REFRESH_TOKEN_REUSED, CODE_REUSED = "refresh_token_reused", "code_reused"


def parse_grant_name(name: str, field: str = "name") -> str:
    grant_id = name.removeprefix(NAME_PREFIX)
    if grant_id == name or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", grant_id):
        raise InvalidArgument.for_field(field, f"{name[:80]!r} is not a grant name, grants/{{id}}")
    return grant_id


def parse_filter(text: str) -> tuple[str | None, str | None]:
    """(kind, state) from `kind = OAUTH AND state = ACTIVE` (either, both or neither)."""
    kind = state = None
    if not text.strip():
        return kind, state
    for term in re.split(r"\s+AND\s+", text.strip()):
        match = _TERM.fullmatch(term)
        if match is None:
            raise InvalidArgument.for_field(
                "filter",
                "supported: kind = LOGIN|OAUTH and state = ACTIVE|REVOKED|EXPIRED, joined by AND",
            )
        field, value = match.group(1), match.group(2).upper()
        if field == "kind":
            if value not in _KINDS:
                raise InvalidArgument.for_field("filter", "kind is LOGIN or OAUTH")
            kind = _KINDS[value]
        else:
            if value not in grant_store.STATES:
                raise InvalidArgument.for_field("filter", "state is ACTIVE, REVOKED or EXPIRED")
            state = value
    return kind, state


def to_grant_message(record: GrantRecord, now: int) -> auth_pb2.Grant:
    message = auth_pb2.Grant(
        name=NAME_PREFIX + record.id,
        account=account_name(record.key_id),
        kind=_KIND_ENUM.get(record.kind, auth_pb2.Grant.KIND_UNSPECIFIED),
        client_id=record.client_id,
        client_name=record.client_name,
        scope=record.scope,
        resource=record.resource,
        state=_STATE_ENUM[record.state(now)],
        create_time=to_timestamp(record.create_time),
        last_use_time=to_timestamp(record.last_use_time),
        expire_time=to_timestamp(record.expire_time),
        revoke_reason=record.revoke_reason,
    )
    if record.revoke_time is not None:
        message.revoke_time.CopyFrom(to_timestamp(record.revoke_time))
    return message


class GrantManager:
    def __init__(self, database: Database, bus: ChangeBus, revocations: Revocations) -> None:
        self._db = database
        self._bus = bus
        self._revocations = revocations

    async def record(
        self, conn: AsyncConnection, grant: GrantRecord, event: str, *, address: str
    ) -> None:
        """A new grant and its first audit entry, in the caller's transaction."""
        await grant_store.insert_grant(conn, grant)
        await grant_store.audit(
            conn,
            [
                grant_store.audit_row(
                    event,
                    now=grant.create_time,
                    account=account_name(grant.key_id),
                    grant_id=grant.id,
                    client_id=grant.client_id,
                    scope=grant.scope,
                    address=address,
                )
            ],
        )

    async def revoke_within(
        self,
        conn: AsyncConnection,
        grant_id: str,
        now: int,
        reason: str,
        *,
        address: str = "",
        detail: str = "",
    ) -> str:
        """Revoke the grant in the caller's transaction: its refresh tokens, and (announced to
        every replica) its access tokens. Returns the notice to hand to `committed` once the
        transaction has committed. A revoked grant stays revoked for its first reason."""
        grant = await grant_store.get_grant(conn, grant_id)
        first = await grant_store.revoke_grant(conn, grant_id, now, reason)
        await store.revoke_family(conn, grant_id)
        if first and grant is not None:
            await grant_store.audit(
                conn,
                [
                    grant_store.audit_row(
                        grant_store.REVOKED_EVENT,
                        now=now,
                        account=account_name(grant.key_id),
                        grant_id=grant_id,
                        client_id=grant.client_id,
                        scope=grant.scope,
                        address=address,
                        detail=detail or reason,
                    )
                ],
            )
        payload = self._revocations.grant_revoked(grant_id, now)
        await self._bus.announce_in_transaction(conn, REVOCATION_TOPIC, payload)
        return payload

    def committed(self, payload: str) -> None:
        """Tell the other replicas now: the transaction that wrote `payload` committed."""
        self._bus.committed(REVOCATION_TOPIC, payload)

    async def list_page(
        self, caller: Caller, filter_text: str, page_size: int, page_token: str
    ) -> auth_pb2.ListGrantsResponse:
        kind, state = parse_filter(filter_text)
        size = paging.page_size(page_size)
        key = paging.query_key("grants", caller.account, kind or "", state or "")
        after = None
        if page_token:
            moment, _, grant_id = paging.decode_token(page_token, key).partition(":")
            if not moment.isdigit():
                raise InvalidArgument.for_field("page_token", "malformed; start again without it")
            after = (int(moment), grant_id)
        now = now_us()
        async with self._db.read() as conn:
            rows = await grant_store.list_grants(
                conn, caller.key_id, kind=kind, state=state, now=now, after=after, limit=size + 1
            )
        page = rows[:size]
        token = ""
        if len(rows) > size:
            token = paging.encode_token(f"{page[-1].create_time}:{page[-1].id}", key)
        return auth_pb2.ListGrantsResponse(
            grants=[to_grant_message(row, now) for row in page], next_page_token=token
        )

    async def revoke(self, caller: Caller, name: str, address: str) -> auth_pb2.Grant:
        """RevokeGrant: the caller's own grant (any grant for admins)."""
        grant_id = parse_grant_name(name)
        now = now_us()
        async with self._db.write() as conn:
            grant = await grant_store.get_grant(conn, grant_id)
            if grant is None or not caller.can_see(account_name(grant.key_id)):
                raise NotFound(
                    f"{name} not found", reason="GRANT_NOT_FOUND", metadata={"name": name}
                )
            payload = await self.revoke_within(
                conn, grant_id, now, REVOKED_BY_USER, address=address, detail=f"by {caller.account}"
            )
            revoked = await grant_store.get_grant(conn, grant_id)
        self.committed(payload)
        assert revoked is not None
        log.info(
            "grant revoked",
            extra={"grant": grant_id, "account": account_name(grant.key_id), "by": caller.account},
        )
        return to_grant_message(revoked, now)
