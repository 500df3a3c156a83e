"""The packs table: which builds exist, whose they are and which node holds their archive."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.db.schema import packs
from formation_mcp.errors import NotFound

_BY_BUILD_AND_OWNER = sa.select(packs).where(
    packs.c.build_id == sa.bindparam("build_id"), packs.c.owner == sa.bindparam("owner")
)


@dataclass(frozen=True, slots=True)
class PackRecord:
    build_id: str
    owner: str
    name: str
    digest: str
    size_bytes: int
    formfile: str
    """The normalized Formfile as JSON."""
    node: str
    """The node whose artifact store holds the archive."""
    create_time: int = field(default=0, compare=False)
    """Microseconds since the epoch; stamped by the table (not part of what a pack is)."""

    @property
    def archive_name(self) -> str:
        return f"{self.digest}.tar.gz"


class PackStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def find(self, build_id: str, owner: str) -> PackRecord | None:
        """The caller's pack with this build id, or None."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(_BY_BUILD_AND_OWNER, {"build_id": build_id, "owner": owner})
            ).first()
        if row is None:
            return None
        return PackRecord(
            build_id=row.build_id,
            owner=row.owner,
            name=row.name,
            digest=row.digest,
            size_bytes=row.size_bytes,
            formfile=row.formfile,
            node=row.node,
            create_time=row.create_time,
        )

    async def get(self, build_id: str, owner: str) -> PackRecord:
        """The caller's pack with this build id; NOT_FOUND (PACK_NOT_FOUND) otherwise."""
        pack = await self.find(build_id, owner)
        if pack is None:
            raise NotFound(
                f"no pack {build_id!r} among yours; pack.build returns the build_id to use",
                reason="PACK_NOT_FOUND",
                metadata={"build_id": build_id},
            )
        return pack

    async def add(self, pack: PackRecord) -> None:
        """Record a finished build; a build recorded already (it finished elsewhere first)
        stays as it is."""
        with contextlib.suppress(IntegrityError):
            async with self._db.write() as conn:
                await conn.execute(
                    packs.insert().values(
                        build_id=pack.build_id,
                        owner=pack.owner,
                        name=pack.name,
                        digest=pack.digest,
                        size_bytes=pack.size_bytes,
                        formfile=pack.formfile,
                        node=pack.node,
                        create_time=now_us(),
                    )
                )

    async def list(self, owner: str, limit: int) -> list[PackSummary]:
        """The owner's packs, newest first, at most `limit`."""
        query = (
            sa.select(
                packs.c.build_id,
                packs.c.name,
                packs.c.digest,
                packs.c.size_bytes,
                packs.c.create_time,
            )
            .where(packs.c.owner == owner)
            .order_by(packs.c.create_time.desc(), packs.c.build_id)
            .limit(limit)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            PackSummary(row.build_id, row.name, row.digest, row.size_bytes, row.create_time)
            for row in rows
        ]


@dataclass(frozen=True, slots=True)
class PackSummary:
    build_id: str
    name: str
    digest: str
    size_bytes: int
    create_time: int
    """Microseconds since the epoch."""
