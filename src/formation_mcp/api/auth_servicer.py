"""AuthService and AccountsService: thin over `AuthManager` (login, tokens),
`AuthorizationManager` (MCP hosts' sign-in requests), `GrantManager` (sessions and grants) and
`AccountManager`."""

from __future__ import annotations

from formation.mcp.v1 import accounts_pb2, accounts_pb2_grpc, auth_pb2, auth_pb2_grpc
from google.protobuf import empty_pb2

from formation_mcp.api.peers import client_address
from formation_mcp.api.wrapping import Context
from formation_mcp.auth.accounts import AccountManager
from formation_mcp.auth.authorizations import AuthorizationManager
from formation_mcp.auth.console_sessions import SIGN_IN_PATH, ConsoleSessions
from formation_mcp.auth.grants import GrantManager
from formation_mcp.auth.manager import AuthManager
from formation_mcp.clock import to_timestamp
from formation_mcp.identity import current_caller
from formation_mcp.proxies import ProxyTrust


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(
        self,
        auth: AuthManager,
        authorizations: AuthorizationManager,
        grants: GrantManager,
        proxies: ProxyTrust,
        console: ConsoleSessions,
    ) -> None:
        self._console = console
        self._auth = auth
        self._authorizations = authorizations
        self._grants = grants
        self._proxies = proxies

    async def CreateChallenge(
        self, request: auth_pb2.CreateChallengeRequest, context: Context
    ) -> auth_pb2.Challenge:
        return await self._auth.create_challenge(
            request.public_key, client_address(context, self._proxies)
        )

    async def Login(self, request: auth_pb2.LoginRequest, context: Context) -> auth_pb2.Session:
        return await self._auth.login(
            request.challenge_id,
            request.public_key,
            request.signature,
            client_address(context, self._proxies),
        )

    async def RefreshToken(
        self, request: auth_pb2.RefreshTokenRequest, context: Context
    ) -> auth_pb2.Session:
        return await self._auth.refresh(request.refresh_token)

    async def RevokeToken(
        self, request: auth_pb2.RevokeTokenRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._auth.revoke(current_caller(), request.refresh_token)
        return empty_pb2.Empty()

    async def GetCurrentAccount(
        self, request: empty_pb2.Empty, context: Context
    ) -> auth_pb2.Account:
        return await self._auth.current_account(current_caller())

    async def GetJwks(self, request: auth_pb2.GetJwksRequest, context: Context) -> auth_pb2.Jwks:
        return await self._auth.jwks()

    async def GetAuthorizationRequest(
        self, request: auth_pb2.GetAuthorizationRequestRequest, context: Context
    ) -> auth_pb2.AuthorizationRequest:
        return await self._authorizations.get(request.name, client_address(context, self._proxies))

    async def ApproveAuthorizationRequest(
        self, request: auth_pb2.ApproveAuthorizationRequestRequest, context: Context
    ) -> auth_pb2.AuthorizationRequest:
        return await self._authorizations.approve(
            request.name,
            request.public_key,
            request.signature,
            request.scope,
            client_address(context, self._proxies),
        )

    async def DenyAuthorizationRequest(
        self, request: auth_pb2.DenyAuthorizationRequestRequest, context: Context
    ) -> auth_pb2.AuthorizationRequest:
        return await self._authorizations.deny(
            request.name,
            request.public_key,
            request.signature,
            client_address(context, self._proxies),
        )

    async def ListGrants(
        self, request: auth_pb2.ListGrantsRequest, context: Context
    ) -> auth_pb2.ListGrantsResponse:
        return await self._grants.list_page(
            current_caller(), request.filter, request.page_size, request.page_token
        )

    async def RevokeGrant(
        self, request: auth_pb2.RevokeGrantRequest, context: Context
    ) -> auth_pb2.Grant:
        return await self._grants.revoke(
            current_caller(), request.name, client_address(context, self._proxies)
        )

    async def CreateConsoleLink(
        self, request: auth_pb2.CreateConsoleLinkRequest, context: Context
    ) -> auth_pb2.ConsoleLink:
        link = await self._console.create_link(current_caller())
        return auth_pb2.ConsoleLink(
            code=link.code,
            path=f"{SIGN_IN_PATH}?code={link.code}",
            expire_time=to_timestamp(link.expire_time),
        )


class AccountsServicer(accounts_pb2_grpc.AccountsServiceServicer):
    def __init__(self, accounts: AccountManager) -> None:
        self._accounts = accounts

    async def ListAccounts(
        self, request: accounts_pb2.ListAccountsRequest, context: Context
    ) -> accounts_pb2.ListAccountsResponse:
        return await self._accounts.list_page(request.page_size, request.page_token)

    async def GetAccount(
        self, request: accounts_pb2.GetAccountRequest, context: Context
    ) -> auth_pb2.Account:
        return await self._accounts.get(request.name)

    async def CreateAccount(
        self, request: accounts_pb2.CreateAccountRequest, context: Context
    ) -> auth_pb2.Account:
        return await self._accounts.create(request.account)

    async def UpdateAccount(
        self, request: accounts_pb2.UpdateAccountRequest, context: Context
    ) -> auth_pb2.Account:
        return await self._accounts.update(request.account, list(request.update_mask.paths))
