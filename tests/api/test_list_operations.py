"""ListOperations: AIP-158 paging and the AIP-160 filter subset, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import TypeAlias, TypedDict

import grpc
import pytest
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc
from tests.support.auth import Md
from tests.support.errors import field_violations
from tests.support.operations import Worker, metadata_of, new_operation

from formation_mcp.app import Application

Stub: TypeAlias = "operations_pb2_grpc.OperationsServiceAsyncStub"


class ListFields(TypedDict, total=False):
    """Fields of a ListOperationsRequest."""

    filter: str
    page_size: int
    page_token: str


async def list_all(stub: Stub, md: Md, filter_text: str = "", page_size: int = 0) -> list[str]:
    names: list[str] = []
    token = ""
    while True:
        page = await stub.ListOperations(
            operations_pb2.ListOperationsRequest(
                filter=filter_text, page_size=page_size, page_token=token
            ),
            metadata=md,
        )
        names.extend(op.name for op in page.operations)
        token = page.next_page_token
        if not token:
            return names


async def test_lists_own_operations_newest_first(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    created = [await new_operation(app, account) for _ in range(3)]
    await new_operation(app, "someone-else")
    assert await list_all(operations_stub, as_account) == list(reversed(created))


async def test_pages_have_the_requested_size_and_the_last_has_no_token(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    for _ in range(5):
        await new_operation(app, account)
    first = await operations_stub.ListOperations(
        operations_pb2.ListOperationsRequest(page_size=2), metadata=as_account
    )
    assert len(first.operations) == 2 and first.next_page_token
    rest = await operations_stub.ListOperations(
        operations_pb2.ListOperationsRequest(page_size=3, page_token=first.next_page_token),
        metadata=as_account,
    )
    assert len(rest.operations) == 3 and rest.next_page_token == ""


async def test_paging_under_concurrent_inserts_has_no_duplicates_or_gaps(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    existing = {await new_operation(app, account) for _ in range(40)}
    seen: list[str] = []
    token = ""
    while True:
        inserting = asyncio.gather(*(new_operation(app, account) for _ in range(3)))
        page = await operations_stub.ListOperations(
            operations_pb2.ListOperationsRequest(page_size=7, page_token=token),
            metadata=as_account,
        )
        await inserting
        seen.extend(op.name for op in page.operations)
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)), "no operation twice"
    assert existing <= set(seen), "every operation that existed before paging began"


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("state = RUNNING", {"running"}),
        ("state != RUNNING", {"pending", "done"}),
        ("done = true", {"done"}),
        ("done = false", {"pending", "running"}),
        ('tool = "pack.build"', {"running"}),
        ('tool = "pack.*"', {"running", "done"}),
        ("tool = vm.create AND done = false", {"pending"}),
        ('state = SUCCEEDED AND tool = "pack.ship"', {"done"}),
    ],
)
async def test_filters_select_matching_operations(
    app: Application,
    operations_stub: Stub,
    account: str,
    as_account: Md,
    filter_text: str,
    expected: set[str],
) -> None:
    names = {
        "pending": await new_operation(app, account, "vm.create"),
        "running": await new_operation(app, account, "pack.build"),
        "done": await new_operation(app, account, "pack.ship"),
    }
    await Worker(app, names["running"]).start()
    finisher = Worker(app, names["done"])
    await finisher.start()
    await finisher.succeed({})
    found = set(await list_all(operations_stub, as_account, filter_text))
    assert found == {names[key] for key in expected}


async def test_create_time_filter_compares_timestamps(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    older = await new_operation(app, account)
    newer = await new_operation(app, account)
    created = metadata_of(
        await operations_stub.GetOperation(
            operations_pb2.GetOperationRequest(name=older), metadata=as_account
        )
    ).create_time.ToDatetime(UTC)
    boundary = created.isoformat().replace("+00:00", "Z")
    assert await list_all(operations_stub, as_account, f'create_time > "{boundary}"') == [newer]
    assert await list_all(operations_stub, as_account, f"create_time <= {boundary}") == [older]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"filter": "owner = bob"}, "filter"),
        ({"filter": "state = RUNNING OR done = true"}, "filter"),
        ({"filter": "state < RUNNING"}, "filter"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": "not a token!"}, "page_token"),
    ],
)
async def test_bad_list_requests_name_the_field(
    operations_stub: Stub, as_account: Md, request_fields: ListFields, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations_stub.ListOperations(
            operations_pb2.ListOperationsRequest(**request_fields),
            metadata=as_account,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [field]


async def test_page_token_from_another_query_is_refused(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    for _ in range(3):
        await new_operation(app, account)
    first = await operations_stub.ListOperations(
        operations_pb2.ListOperationsRequest(page_size=1), metadata=as_account
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations_stub.ListOperations(
            operations_pb2.ListOperationsRequest(
                page_size=1, page_token=first.next_page_token, filter="done = false"
            ),
            metadata=as_account,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["page_token"]


async def test_page_size_above_the_maximum_is_coerced(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    await new_operation(app, account)
    page = await operations_stub.ListOperations(
        operations_pb2.ListOperationsRequest(page_size=1_000_000), metadata=as_account
    )
    assert len(page.operations) == 1
