"""Workloads run sandboxed and, when the tests run as root, as `nobody`, as in production: their
directories must be where that user can reach them (pytest's tmp_path is not)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from formation_mcp.workloads.sandbox import WorkloadSandbox


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory under /tmp that the workload user can reach."""
    path = Path(tempfile.mkdtemp(prefix="fmcp-workload-test-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sandbox() -> WorkloadSandbox:
    """The isolation production uses (never the unsafe mode)."""
    return WorkloadSandbox(unsafe=False)
