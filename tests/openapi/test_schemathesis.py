"""Schemathesis against the REST API: through the real Envoy, with a real token, the document's
requests (generated, and with names of real tools and operations) must get no 5xx, and every
response must be one the document describes (status, content type, schema).

Fuzzed: every GET, and WaitOperation (safe: on the caller's own, finished operations it returns
at once). Not fuzzed: the auth POSTs (they spend the login rate every test here shares), and
the calls that change things (CallTool, Cancel/DeleteOperation, account admin, RevokeToken).

Hypothesis runs derandomized, with a bounded number of examples, in a worker thread: the
servers run on this test's event loop, which must keep serving while requests block.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from formation.mcp.v1 import auth_pb2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from formation_mcp.envoy import TEMPLATE
from formation_mcp.openapi import NDJSON, OUTPUT

JsonObject = dict[str, Any]

DOCUMENT: JsonObject = json.loads(OUTPUT.read_text())
POSITIVE_EXAMPLES = 30
NEGATIVE_EXAMPLES = 15
REQUEST_TIMEOUT = 10.0
WATCH = ("GET", "/v1/operations/{operation}:watch")
SAFE_POSTS = [("POST", "/v1/operations/{operation}:wait")]
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# A watch's 200 is newline-delimited JSON, checked line by line below (schemathesis reads one
# JSON document); its content type is test_watch_stream_is_labelled_ndjson's business.
WATCH_STREAM_CHECKS: list[CheckFunction] = [not_a_server_error, status_code_conformance]

# The two findings below are fixed in Envoy's configuration (a Lua filter before the
# transcoder): until envoy/envoy.yaml has the fix, its test is an expected failure, strictly.
ENVOY_CONFIG = TEMPLATE.read_text()
ENVOY_LABELS_NDJSON = NDJSON in ENVOY_CONFIG
ENVOY_DROPS_BAD_HEADERS = "^[0-9a-z_.-]+$" in ENVOY_CONFIG


# Known bug (see test_headers_grpc_refuses_are_not_a_server_error): Envoy forwards every request
# header to the gRPC server as metadata, and grpcio fails the call with INTERNAL (a 500) when a
# name is not gRPC metadata ([0-9a-z_.-]) or a grpc-*/*-bin value does not parse. Negative
# cases send such headers; those 500s are counted apart, anything else is a failure.
GRPC_REFUSED_HEADER = re.compile(r"[^0-9a-z_.-]|^grpc-|-bin$")
GRPC_REFUSAL = re.compile(r"Illegal header key|Error parsing '[^']*' metadata")


def grpc_refused_header(case: Case[Any]) -> bool:
    return any(GRPC_REFUSED_HEADER.search(name.lower()) for name in case.headers or {})


ENDLESS = {("GET", "/v1/events:watch")}
"""Streams that never end by themselves (a valid WatchEvents waits for new events for as long
as the client listens): not fuzzed; tests/envoy/test_events_rest.py checks them."""


def fuzzed_operations() -> list[tuple[str, str]]:
    gets = sorted(
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method == "get" and (method.upper(), path) not in ENDLESS
    )
    return gets + SAFE_POSTS


def negatable(method: str, path: str) -> bool:
    """Whether negative cases can be made: a public operation whose only parameters are path
    segments (any text but `/`) has no invalid value a URL can carry, and no token to spoil."""
    operation = DOCUMENT["paths"][path][method.lower()]
    parameters = operation.get("parameters", [])
    if not parameters:
        return False
    return bool(operation.get("security")) or any(p["in"] != "path" for p in parameters)


def operation_validator(document: JsonObject) -> Draft202012Validator:
    """JSON Schema validation of one google.longrunning.Operation against the document."""
    return Draft202012Validator(
        {
            "$ref": "#/components/schemas/google.longrunning.Operation",
            "components": document["components"],
        }
    )


@dataclass(frozen=True)
class Known:
    """Real values for path parameters: generated ones almost never name anything."""

    path_parameters: dict[str, list[str]]


@dataclass
class Outcome:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    refused_headers: int = 0


def bearer(session: auth_pb2.Session) -> dict[str, str]:
    return {"authorization": f"Bearer {session.access_token}"}


async def finished_operation(client: httpx.AsyncClient, text: str) -> str:
    """The name of a finished test.echo operation of the caller's, made over REST."""
    response = await client.post("/v1/tools/test.echo:call", json={"arguments": {"text": text}})
    response.raise_for_status()
    operation: JsonObject = response.json()
    if not operation["done"]:
        waited = await client.post(f"/v1/{operation['name']}:wait", json={"timeout": "10s"})
        waited.raise_for_status()
        operation = waited.json()
    assert operation["done"], operation
    name: str = operation["name"]
    return name


@pytest.fixture
async def known(envoy: str, session: auth_pb2.Session) -> Known:
    async with httpx.AsyncClient(base_url=envoy, headers=bearer(session), timeout=30) as client:
        names = [await finished_operation(client, text) for text in ("one", "two")]
        tools = (await client.get("/v1/tools")).json()["tools"]
    return Known(
        path_parameters={
            "operation": [name.removeprefix("operations/") for name in names],
            "tool": [tool["name"].removeprefix("tools/") for tool in tools][:3],
            "account": [session.account.key_id],
        }
    )


def fuzz(base_url: str, headers: dict[str, str], known: Known) -> Outcome:
    """Runs in a worker thread: every fuzzed operation, positive then negative cases."""
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    schema.config.update(base_url=base_url)
    validator = operation_validator(DOCUMENT)
    outcome = Outcome()

    def check(case: Case[Any], label: str) -> None:
        try:
            response = case.call(headers=headers, timeout=REQUEST_TIMEOUT)
        except Exception as exc:  # a connection error is a finding too
            outcome.failures.append(f"{label}: {case.as_curl_command()}: {exc!r}")
            return
        outcome.statuses[(label, response.status_code)] += 1
        if (
            response.status_code == 500
            and grpc_refused_header(case)
            and GRPC_REFUSAL.search(response.text)
        ):
            outcome.refused_headers += 1
            return
        is_stream = (case.method, case.path) == WATCH and response.status_code == 200
        try:
            case.validate_response(
                response, checks=WATCH_STREAM_CHECKS if is_stream else CHECKS, headers=headers
            )
            if is_stream:
                lines = [line for line in response.text.split("\n") if line]
                assert lines, "an empty watch stream"
                for line in lines:
                    errors = [e.message for e in validator.iter_errors(json.loads(line))]
                    assert not errors, f"watch message {line} does not conform: {errors}"
        except (AssertionError, BaseExceptionGroup) as exc:
            curl = case.as_curl_command(headers={"authorization": "Bearer $TOKEN"})
            outcome.failures.append(f"{label}: {curl}\n{exc}")

    for method, path in fuzzed_operations():
        operation = schema[path][method]
        label = f"{method} {path}"
        names = [p["name"] for p in DOCUMENT["paths"][path][method.lower()].get("parameters", [])]
        real = [
            operation.as_strategy(path_parameters={name: value})
            for name in names
            for value in known.path_parameters.get(name, [])
        ]
        modes = [(st.one_of(operation.as_strategy(), *real), POSITIVE_EXAMPLES)]
        if negatable(method, path):
            negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
            modes.append((negative, NEGATIVE_EXAMPLES))
        for strategy, examples in modes:
            run_examples(strategy, examples, functools.partial(check, label=label))
    return outcome


def run_examples(
    strategy: st.SearchStrategy[Case[Any]], examples: int, on_case: Callable[[Case[Any]], None]
) -> None:
    """Up to `examples` cases, the same ones every run (derandomized), with no shrinking:
    `on_case` records findings instead of raising."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Case[Any]) -> None:
        on_case(case)

    run()


async def test_the_rest_api_conforms_to_its_document(
    envoy: str, session: auth_pb2.Session, known: Known
) -> None:
    outcome = await asyncio.to_thread(fuzz, envoy, bearer(session), known)
    print(f"statuses: {sorted(outcome.statuses.items())}")  # shown when the test fails
    print(f"500s for headers gRPC refuses (known bug): {outcome.refused_headers}")
    assert not outcome.failures, "\n\n".join(outcome.failures)
    seen = {label for label, _status in outcome.statuses}
    assert seen == {f"{method} {path}" for method, path in fuzzed_operations()}
    # The real names and the token got through: each of these answered 200 at least once.
    for label in [
        "GET /v1/tools",
        "GET /v1/tools/{tool}",
        "GET /v1/operations",
        "GET /v1/operations/{operation}",
        "GET /v1/operations/{operation}:watch",
        "POST /v1/operations/{operation}:wait",
        "GET /v1/auth/account",
        "GET /v1/auth/jwks",
    ]:
        assert outcome.statuses[(label, 200)] > 0, (label, outcome.statuses)
    # A `user` is refused account administration, as documented (403, google.rpc.Status).
    assert outcome.statuses[("GET /v1/accounts", 403)] > 0, outcome.statuses


@pytest.mark.xfail(
    not ENVOY_LABELS_NDJSON,
    strict=True,
    raises=AssertionError,
    reason="Envoy's transcoder sends NDJSON server streams (stream_newline_delimited) with "
    "Content-Type: application/json; the document says application/x-ndjson",
)
async def test_watch_stream_is_labelled_ndjson(envoy: str, session: auth_pb2.Session) -> None:
    async with httpx.AsyncClient(base_url=envoy, headers=bearer(session), timeout=30) as client:
        name = await finished_operation(client, "watched")
        response = await client.get(f"/v1/{name}:watch")
    assert response.status_code == 200
    operation_validator(DOCUMENT).validate(json.loads(response.text.splitlines()[0]))
    assert response.headers["content-type"].split(";")[0] == NDJSON


@pytest.mark.xfail(
    not ENVOY_DROPS_BAD_HEADERS,
    strict=True,
    raises=AssertionError,
    reason="Envoy forwards REST headers as gRPC metadata as they are; grpcio refuses names "
    "outside [0-9a-z_.-], bad grpc-timeout and bad *-bin values with INTERNAL, a 500",
)
@pytest.mark.parametrize(
    "header",
    [("bad'key", "x"), ("a|b", "x"), ("grpc-timeout", "soon"), ("x-thing-bin", "!!!")],
    ids=["quote-in-name", "bar-in-name", "grpc-timeout", "bad-bin-value"],
)
async def test_headers_grpc_refuses_are_not_a_server_error(
    envoy: str, header: tuple[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=envoy, timeout=30) as client:
        response = await client.get("/v1/auth/jwks", headers=[header])
    assert response.status_code < 500, response.text
