"""The pack store: a caller finds only their own packs; recording a build twice keeps the
first."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from formation_mcp.db import migrate
from formation_mcp.db.database import Database
from formation_mcp.errors import NotFound
from formation_mcp.workloads.packs import PackRecord, PackStore


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[PackStore]:
    database = Database(database_url)
    await migrate.upgrade(database)
    try:
        yield PackStore(database)
    finally:
        await database.close()


def a_pack(owner: str, **changes: str) -> PackRecord:
    values = {
        "build_id": uuid.uuid4().hex,
        "owner": owner,
        "name": "hello",
        "digest": "d" * 64,
        "formfile": '{"name": "hello"}',
        "node": "node-a",
        **changes,
    }
    return PackRecord(
        build_id=values["build_id"],
        owner=values["owner"],
        name=values["name"],
        digest=values["digest"],
        size_bytes=123,
        formfile=values["formfile"],
        node=values["node"],
    )


async def test_a_recorded_pack_is_found_by_its_owner(store: PackStore) -> None:
    pack = a_pack("accounts/pack-owner")
    await store.add(pack)
    assert await store.find(pack.build_id, "accounts/pack-owner") == pack


async def test_another_callers_pack_is_not_found(store: PackStore) -> None:
    pack = a_pack("accounts/pack-owner")
    await store.add(pack)
    assert await store.find(pack.build_id, "accounts/someone-else") is None
    with pytest.raises(NotFound) as raised:
        await store.get(pack.build_id, "accounts/someone-else")
    assert raised.value.reason == "PACK_NOT_FOUND"


async def test_recording_the_same_build_again_keeps_the_first(store: PackStore) -> None:
    first = a_pack("accounts/pack-owner")
    await store.add(first)
    await store.add(a_pack("accounts/pack-owner", build_id=first.build_id, node="node-b"))
    assert await store.get(first.build_id, "accounts/pack-owner") == first


def test_the_archive_is_named_by_its_digest() -> None:
    assert a_pack("accounts/x", digest="ab" * 32).archive_name == "ab" * 32 + ".tar.gz"


async def test_the_list_is_the_owners_newest_first_up_to_the_limit(store: PackStore) -> None:
    owner = f"accounts/{uuid.uuid4().hex}"
    added = [a_pack(owner, name=f"p{i}") for i in range(3)]
    for pack in added:
        await store.add(pack)
    await store.add(a_pack(f"accounts/{uuid.uuid4().hex}"))
    listed = await store.list(owner, 2)
    assert [pack.name for pack in listed] == ["p2", "p1"]
    assert (await store.get(added[0].build_id, owner)).create_time > 0
