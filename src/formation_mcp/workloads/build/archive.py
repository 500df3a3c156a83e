"""The pack archive: a deterministic tar.gz of the image root and the manifest.

Sorted, mtime 0, uid/gid 0, no owner names, modes 0o755/0o644 by the exec bit, directories
0o755, symbolic links kept as links; other special files are left out and logged. The
manifest `.formation/pack.json` is added (a `.formation` directory made by the steps is
replaced). The archive is written to `artifact_dir/<sha256>.tar.gz` atomically; an image root
over `max_pack_bytes` is RESOURCE_EXHAUSTED `PACK_TOO_LARGE`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import secrets
import stat
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from formation_mcp.errors import ResourceExhausted
from formation_mcp.workloads.build.background import Aborted
from formation_mcp.workloads.build.image import DIR_FLAGS, READ_FLAGS
from formation_mcp.workloads.build.request import PACK_FORMAT, BuildRequest
from formation_mcp.workloads.build.steps import not_applied

MANIFEST_DIR: Final = ".formation"
MANIFEST_NAME: Final = "pack.json"


class _HashingWriter:
    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _Archiver:
    """Writes the image root and the manifest as a deterministic tar stream."""

    def __init__(self, tar: tarfile.TarFile, max_bytes: int, abort: threading.Event) -> None:
        self.tar = tar
        self.max_bytes = max_bytes
        self.abort = abort
        self.total = 0
        self.skipped: list[str] = []

    def add_manifest(self, manifest: bytes) -> None:
        self.tar.addfile(_entry(MANIFEST_DIR, tarfile.DIRTYPE, 0o755))
        name = f"{MANIFEST_DIR}/{MANIFEST_NAME}"
        info = _entry(name, tarfile.REGTYPE, 0o644, len(manifest))
        self.tar.addfile(info, _BytesReader(manifest))

    def add_tree(self, dir_fd: int, prefix: str) -> None:
        with os.scandir(dir_fd) as listing:
            names = sorted(entry.name for entry in listing)
        for name in names:
            if self.abort.is_set():
                raise Aborted
            if not prefix and name == MANIFEST_DIR:
                continue  # reserved for the manifest
            self._add(dir_fd, name, prefix + name)

    def _add(self, dir_fd: int, name: str, path: str) -> None:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            self.tar.addfile(_entry(path, tarfile.DIRTYPE, 0o755))
            inner = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            try:
                self.add_tree(inner, path + "/")
            finally:
                os.close(inner)
        elif stat.S_ISLNK(info.st_mode):
            link = _entry(path, tarfile.SYMTYPE, 0o777)
            link.linkname = os.readlink(name, dir_fd=dir_fd)
            self.tar.addfile(link)
        elif stat.S_ISREG(info.st_mode):
            self._add_file(dir_fd, name, path)
        else:
            self.skipped.append(path)

    def _add_file(self, dir_fd: int, name: str, path: str) -> None:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                self.skipped.append(path)
                return
            self.total += info.st_size
            if self.total > self.max_bytes:
                raise ResourceExhausted(
                    f"the built image is larger than max_pack_bytes = {self.max_bytes} bytes",
                    reason="PACK_TOO_LARGE",
                    metadata={"limit": "max_pack_bytes", "limit_value": str(self.max_bytes)},
                )
            mode = 0o755 if info.st_mode & 0o111 else 0o644
            self.tar.addfile(_entry(path, tarfile.REGTYPE, mode, info.st_size), handle)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._offset + size
        chunk = bytes(self._data[self._offset : end])
        self._offset += len(chunk)
        return chunk


@dataclass(frozen=True)
class Archive:
    digest: str
    size: int
    path: Path
    skipped: list[str]


def write_archive(
    root: Path, manifest: bytes, artifact_dir: Path, max_bytes: int, abort: threading.Event
) -> Archive:
    artifact_dir.mkdir(parents=True, exist_ok=True)
    temporary = artifact_dir / f".pack-{secrets.token_hex(8)}.tmp"
    try:
        with open(temporary, "xb") as raw:
            hashing = _HashingWriter(raw)
            archiver = _write_tar(root, manifest, hashing, max_bytes, abort)
            raw.flush()
            os.fsync(raw.fileno())
        final = artifact_dir / f"{hashing.hexdigest()}.tar.gz"
        os.chmod(temporary, 0o644)
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return Archive(hashing.hexdigest(), hashing.size, final, archiver.skipped)


def _write_tar(
    root: Path, manifest: bytes, out: _HashingWriter, max_bytes: int, abort: threading.Event
) -> _Archiver:
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        archiver = _Archiver(tar, max_bytes, abort)
        archiver.add_manifest(manifest)
        root_fd = os.open(root, DIR_FLAGS)
        try:
            archiver.add_tree(root_fd, "")
        finally:
            os.close(root_fd)
    return archiver


def manifest_bytes(request: BuildRequest, build_id: str, context_digest: str) -> bytes:
    formfile = request.formfile
    document = {
        "format": PACK_FORMAT,
        "build_id": build_id,
        "context_digest": context_digest,
        "name": formfile.name,
        "formfile": json.loads(formfile.normalized_json()),
        "workdir": formfile.workdir,
        "entrypoint": list(formfile.entrypoint),
        "expose": list(formfile.expose),
        "env": formfile.env,
        "not_applied": not_applied(formfile),
    }
    text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")
