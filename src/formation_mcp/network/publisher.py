"""Publishes the routes to this server's Envoy: renders the routes table (`network.xds`) into
the files Envoy watches (file-based xDS: `cds.json`, `rds.json` in one directory) whenever
what they would hold changed.

Every replica renders from the database: at once after a route change made in this process,
and every `interval` seconds otherwise (instances change state and port on the nodes that
run them, routes on other replicas), so each replica's Envoy carries every route within
about a second. A file is replaced atomically (written beside, then renamed over: Envoy
watches the path for moves and reads whole files only); clusters are written before the
routes that use them. Envoy applies both without a restart and keeps requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Final

from formation_mcp.network.routes import RouteStore
from formation_mcp.network.xds import cds_document, rds_document

log = logging.getLogger(__name__)

CDS_FILE: Final = "cds.json"
RDS_FILE: Final = "rds.json"


def write_atomically(path: Path, document: dict[str, Any]) -> None:
    """`path` holds the whole new document or the whole old one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    temporary.write_text(json.dumps(document, sort_keys=True, indent=1))
    os.replace(temporary, path)


class RoutePublisher:
    def __init__(
        self,
        store: RouteStore,
        directory: Path,
        base_route_config: dict[str, Any],
        interval: float,
    ) -> None:
        self._store = store
        self.directory = directory
        self._base = base_route_config
        self._interval = interval
        self._wake = asyncio.Event()
        self._written: dict[str, str] = {}
        self.publications = 0
        """How many times the files changed (tests and metrics read it)."""

    def wake(self) -> None:
        """A route changed in this process: render now."""
        self._wake.set()

    async def publish(self) -> bool:
        """Render and write what changed; True when a file changed."""
        views = await self._store.views()
        if any(view.instance is None for view in views):
            await self._store.sweep_deleted()
        changed = False
        for name, document in (
            (CDS_FILE, cds_document(views)),
            (RDS_FILE, rds_document(self._base, views)),
        ):
            version = str(document["version_info"])
            path = self.directory / name
            if self._written.get(name) == version and await asyncio.to_thread(path.exists):
                continue
            await asyncio.to_thread(write_atomically, path, document)
            self._written[name] = version
            changed = True
        if changed:
            self.publications += 1
        return changed

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.publish()
            except Exception as exc:  # the database is down, the disk full: try again
                log.warning("cannot publish the routes to Envoy (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
