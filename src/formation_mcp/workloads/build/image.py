"""Writing into the image root without following links.

Everything the driver writes into root goes through directory descriptors opened with
O_NOFOLLOW, and files are replaced by rename, so a link planted by a RUN step can never
redirect a write outside root. COPY and INCLUDE copy from the context (a file, or a
directory's contents); a destination that is already a directory, or `into_dir`, receives a
file under its own name.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Final

from formation_mcp.workloads.sandbox import RunAsIdentity

DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK: Final = 64 * 1024


class UnsafeTarget(Exception):
    """A write into the image would go through a link or onto something that is not a file."""


def path_parts(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeTarget(f"{path!r} has a .. segment")
    return parts


@contextmanager
def _directory(
    base: Path, parts: Sequence[str], owner: RunAsIdentity | None = None, *, create: bool = True
) -> Iterator[int]:
    """A descriptor of base/parts, walked without following links; missing directories are
    created (owned by `owner`) unless `create` is false."""
    fd = os.open(base, DIR_FLAGS)
    try:
        for depth, part in enumerate(parts):
            created = False
            if create:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                    created = True
            try:
                inner = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                where = "/".join(parts[: depth + 1])
                raise UnsafeTarget(f"{where} is not a plain directory ({exc.strerror})") from None
            os.close(fd)
            fd = inner
            if created:
                _own(fd, 0o755, owner)
        yield fd
    finally:
        os.close(fd)


def _own(fd: int, mode: int, owner: RunAsIdentity | None) -> None:
    os.fchmod(fd, mode)
    if owner is not None:
        os.fchown(fd, owner.uid, owner.gid)


def lstat_in(base: Path, parts: Sequence[str]) -> os.stat_result | None:
    """lstat of base/parts without following links on the way, or None if it is not there."""
    if not parts:
        return os.lstat(base)
    try:
        with _directory(base, parts[:-1], create=False) as fd:
            return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except (OSError, UnsafeTarget):
        return None


class Image:
    """The image root: every write goes through directory descriptors (see the module docs)."""

    def __init__(self, root: Path, owner: RunAsIdentity | None) -> None:
        self.root = root
        self.owner = owner

    def ensure_dir(self, parts: Sequence[str]) -> None:
        with _directory(self.root, parts, self.owner):
            pass

    def is_dir(self, parts: Sequence[str]) -> bool:
        info = lstat_in(self.root, parts)
        return info is not None and stat.S_ISDIR(info.st_mode)

    def write_file(self, parts: Sequence[str], source: IO[bytes], executable: bool) -> None:
        if not parts:
            raise UnsafeTarget("the image root is a directory, not a file")
        with _directory(self.root, parts[:-1], self.owner) as dir_fd:
            temporary = f".fmcp-{secrets.token_hex(8)}"
            fd = os.open(temporary, _WRITE_FLAGS, 0o600, dir_fd=dir_fd)
            try:
                with os.fdopen(fd, "wb", closefd=False) as target:
                    shutil.copyfileobj(source, target, _CHUNK)
                _own(fd, 0o755 if executable else 0o644, self.owner)
                os.close(fd)
                fd = -1
                os.rename(temporary, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                if fd >= 0:
                    os.close(fd)
                with suppress(OSError):
                    os.unlink(temporary, dir_fd=dir_fd)
                raise


def _context_files(context_root: Path, parts: Sequence[str]) -> Iterator[tuple[list[str], Path]]:
    """(parts relative to `parts`, host path) of every regular file at or under context/parts."""
    info = lstat_in(context_root, parts)
    if info is None:
        raise UnsafeTarget(f"{'/'.join(parts) or '.'} is not in the build context")
    path = context_root.joinpath(*parts)
    if stat.S_ISREG(info.st_mode):
        yield [], path
        return
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeTarget(f"{'/'.join(parts)} in the build context is not a file or directory")
    for directory, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            host = Path(directory, name)
            yield list(host.relative_to(path).parts), host


def copy_into_image(
    image: Image, context_root: Path, source: str, dest: list[str], into_dir: bool
) -> int:
    """Copy context/source to dest in the image; returns the number of files copied."""
    parts = path_parts(source)
    source_info = lstat_in(context_root, parts)
    is_file = source_info is not None and stat.S_ISREG(source_info.st_mode)
    if is_file and (into_dir or not dest or image.is_dir(dest)):
        dest = [*dest, parts[-1]]
    elif not is_file:
        image.ensure_dir(dest)
    count = 0
    for relative, host in _context_files(context_root, parts):
        fd = os.open(host, READ_FLAGS)
        with os.fdopen(fd, "rb") as handle:
            executable = bool(os.fstat(fd).st_mode & 0o111)
            image.write_file([*dest, *relative], handle, executable)
        count += 1
    return count
