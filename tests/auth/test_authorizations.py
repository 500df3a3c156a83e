"""Deciding an MCP host's sign-in request with a key (GetAuthorizationRequest,
Approve/DenyAuthorizationRequest): only a signature of exactly that decision counts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from tests.oauth.host import ManualHost, code_on, pkce_pair
from tests.support.errors import check_refusal

from formation_mcp.app import Application
from formation_mcp.auth.keys import key_id, public_bytes
from formation_mcp.client import Client, FailedPrecondition, InvalidArgument, NotFound
from formation_mcp.client.errors import FmcpClientError, PermissionDenied
from formation_mcp.client.grants import decision_signature


async def pending_code(app: Application, **overrides: str) -> str:
    """A new client's authorization request, as its sign-in page shows the code."""
    host = ManualHost(f"http://{app.http.address}")
    await host.register(client_name="Decided Host")
    _verifier, challenge = pkce_pair()
    async with httpx.AsyncClient(timeout=20) as browser:
        page = await browser.get(host.authorize_url(challenge, **overrides))
    assert page.status_code == 200, page.text
    return code_on(page.text)


@pytest.fixture
async def person(app: Application) -> AsyncIterator[Client]:
    async with Client(app.grpc.address, key=Ed25519PrivateKey.generate(), deadline=20) as client:
        yield client


async def test_the_request_shows_what_the_decision_is_about(
    app: Application, person: Client
) -> None:
    code = await pending_code(app, scope="read-only")
    request = await person.authorizations.get(code.lower())  # typed in any case
    assert request.name == "authorizationRequests/" + code.replace("-", "")
    assert request.user_code == code and request.state == "PENDING"
    assert request.client_name == "Decided Host" and request.client_id.startswith("fmcp-client-")
    assert request.redirect_uri == "http://127.0.0.1:33418/callback"
    assert request.resource == f"http://{app.http.address}/mcp"
    assert request.scope == "read-only" and request.account == ""


async def test_approving_records_the_account_and_scope(app: Application, person: Client) -> None:
    code = await pending_code(app)
    approved = await person.authorizations.approve(code, scope="read-only")
    assert approved.state == "APPROVED" and approved.granted_scope == "read-only"
    key = person.token_source.key
    assert key is not None and approved.account == f"accounts/{key_id(public_bytes(key))}"


async def test_a_signature_of_another_decision_does_not_count(
    app: Application, person: Client
) -> None:
    code = await pending_code(app)
    shown = await person.authorizations.get(code)
    key = person.token_source.key
    assert key is not None
    stub = person.authorizations._stub()
    denial = decision_signature(key, shown, "deny")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ApproveAuthorizationRequest(
            auth_pb2.ApproveAuthorizationRequestRequest(
                name=shown.name, public_key=public_bytes(key), signature=denial
            )
        )
    check_refusal(refused.value, grpc.StatusCode.UNAUTHENTICATED, "SIGNATURE_INVALID")
    other_key = Ed25519PrivateKey.generate()  # a signature by another key than the one named
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ApproveAuthorizationRequest(
            auth_pb2.ApproveAuthorizationRequestRequest(
                name=shown.name,
                public_key=public_bytes(key),
                signature=decision_signature(other_key, shown, "approve full"),
            )
        )
    check_refusal(refused.value, grpc.StatusCode.UNAUTHENTICATED, "SIGNATURE_INVALID")
    assert (await person.authorizations.get(code)).state == "PENDING"


async def test_a_request_asking_for_read_only_cannot_be_granted_more(
    app: Application, person: Client
) -> None:
    code = await pending_code(app, scope="read-only")
    with pytest.raises(InvalidArgument, match="cannot be granted more"):
        await person.authorizations.approve(code, scope="full")


async def test_a_decision_is_made_once(app: Application, person: Client) -> None:
    code = await pending_code(app)
    first = await person.authorizations.approve(code)
    assert (await person.authorizations.approve(code)).state == first.state  # a retry
    with pytest.raises(FailedPrecondition) as refused:
        await person.authorizations.deny(code)
    assert refused.value.reason == "AUTHORIZATION_REQUEST_DECIDED"
    async with Client(app.grpc.address, key=Ed25519PrivateKey.generate()) as other:
        with pytest.raises(FailedPrecondition):
            await other.authorizations.approve(code)


async def test_a_request_for_one_account_is_decided_by_its_key_only(
    app: Application, person: Client
) -> None:
    someone = Ed25519PrivateKey.generate()
    code = await pending_code(app, login_hint=f"accounts/{key_id(public_bytes(someone))}")
    with pytest.raises(PermissionDenied) as refused:
        await person.authorizations.approve(code)
    assert refused.value.reason == "AUTHORIZATION_FOR_ANOTHER_ACCOUNT"
    async with Client(app.grpc.address, key=someone) as owner:
        assert (await owner.authorizations.approve(code)).state == "APPROVED"


async def test_an_unknown_or_malformed_code_is_refused(person: Client) -> None:
    with pytest.raises(NotFound):
        await person.authorizations.get("BCDF-GHJK")
    with pytest.raises(InvalidArgument, match="not an authorization code"):
        await person.authorizations.get("1234")


async def test_deciding_needs_a_key_not_a_token(app: Application, person: Client) -> None:
    code = await pending_code(app)
    async with Client(app.grpc.address, token=await person.access_token()) as by_token:
        with pytest.raises(FmcpClientError, match="needs the account's Ed25519 key"):
            await by_token.authorizations.approve(code)


async def test_denying_records_who_denied(app: Application, person: Client) -> None:
    code = await pending_code(app)
    denied = await person.authorizations.deny(code)
    assert denied.state == "DENIED" and denied.granted_scope == ""
    assert denied.account == (await person.whoami()).name
