"""The committed OpenAPI document and what the OpenAPI tests read from it."""

from __future__ import annotations

import json
from typing import Any

from formation_mcp.openapi import (
    OUTPUT,
)

JsonObject = dict[str, Any]
PROTECTED: list[dict[str, list[str]]] = [{"bearerAuth": []}]


# Every RPC's REST binding, as clients see it: (HTTP method, OpenAPI path).
EXPECTED_OPERATIONS = {
    "AuthService_CreateChallenge": ("post", "/v1/auth/challenge"),
    "AuthService_Login": ("post", "/v1/auth/login"),
    "AuthService_RefreshToken": ("post", "/v1/auth/token:refresh"),
    "AuthService_RevokeToken": ("post", "/v1/auth/token:revoke"),
    "AuthService_GetCurrentAccount": ("get", "/v1/auth/account"),
    "AuthService_GetJwks": ("get", "/v1/auth/jwks"),
    "AuthService_GetAuthorizationRequest": (
        "get",
        "/v1/auth/authorizationRequests/{authorizationRequest}",
    ),
    "AuthService_ApproveAuthorizationRequest": (
        "post",
        "/v1/auth/authorizationRequests/{authorizationRequest}:approve",
    ),
    "AuthService_DenyAuthorizationRequest": (
        "post",
        "/v1/auth/authorizationRequests/{authorizationRequest}:deny",
    ),
    "AuthService_ListGrants": ("get", "/v1/auth/grants"),
    "AuthService_RevokeGrant": ("post", "/v1/auth/grants/{grant}:revoke"),
    "AuthService_CreateConsoleLink": ("post", "/v1/auth/console:createLink"),
    "AccountsService_ListAccounts": ("get", "/v1/accounts"),
    "AccountsService_GetAccount": ("get", "/v1/accounts/{account}"),
    "AccountsService_CreateAccount": ("post", "/v1/accounts"),
    "AccountsService_UpdateAccount": ("patch", "/v1/accounts/{account}"),
    "ToolsService_ListTools": ("get", "/v1/tools"),
    "ToolsService_GetTool": ("get", "/v1/tools/{tool}"),
    "ToolsService_CallTool": ("post", "/v1/tools/{tool}:call"),
    "OperationsService_GetOperation": ("get", "/v1/operations/{operation}"),
    "OperationsService_ListOperations": ("get", "/v1/operations"),
    "OperationsService_CancelOperation": ("post", "/v1/operations/{operation}:cancel"),
    "OperationsService_DeleteOperation": ("delete", "/v1/operations/{operation}"),
    "OperationsService_WaitOperation": ("post", "/v1/operations/{operation}:wait"),
    "OperationsService_WatchOperation": ("get", "/v1/operations/{operation}:watch"),
    "OperationsService_ApproveOperation": ("post", "/v1/operations/{operation}:approve"),
    "OperationsService_DenyOperation": ("post", "/v1/operations/{operation}:deny"),
    "PoliciesService_GetPolicy": ("get", "/v1/accounts/{account}/policy"),
    "PoliciesService_GetPolicy_2": ("get", "/v1/roles/{role}/policy"),
    "PoliciesService_UpdatePolicy": ("patch", "/v1/accounts/{account}/policy"),
    "PoliciesService_UpdatePolicy_2": ("patch", "/v1/roles/{role}/policy"),
    "PoliciesService_GetEffectivePolicy": ("get", "/v1/policy:effective"),
    "EventsService_ListEvents": ("get", "/v1/events"),
    "EventsService_WatchEvents": ("get", "/v1/events:watch"),
}
PUBLIC_OPERATIONS = {
    "AuthService_CreateChallenge",
    "AuthService_Login",
    "AuthService_RefreshToken",
    "AuthService_GetJwks",
    "AuthService_GetAuthorizationRequest",
    "AuthService_ApproveAuthorizationRequest",
    "AuthService_DenyAuthorizationRequest",
}


def committed_document() -> JsonObject:
    """The OpenAPI document as committed in openapi/."""
    loaded: JsonObject = json.loads(OUTPUT.read_text())
    return loaded


def operations_of(document: JsonObject) -> dict[str, tuple[str, str, JsonObject]]:
    found: dict[str, tuple[str, str, JsonObject]] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            found[operation["operationId"]] = (method, path, operation)
    return found


def schema(document: JsonObject, name: str) -> JsonObject:
    found: JsonObject = document["components"]["schemas"][name]
    return found


def prop(document: JsonObject, message: str, field: str) -> JsonObject:
    found: JsonObject = schema(document, message)["properties"][field]
    return found


def body_schema(operation: JsonObject) -> JsonObject:
    found: JsonObject = operation["requestBody"]["content"]["application/json"]["schema"]
    return found


def response_schema(operation: JsonObject, media_type: str = "application/json") -> JsonObject:
    found: JsonObject = operation["responses"]["200"]["content"][media_type]["schema"]
    return found
