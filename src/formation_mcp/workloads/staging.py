"""Staging a build context: the files a build may read, written under a fresh build root.

A context arrives as a map of path -> content (text is UTF-8) or as a gzip-compressed tar
archive. Either way the result is the same tree of regular files and its `ContextDigest`, so
identical contexts get identical digests whatever form they came in.

Rules
-----
- A path is relative, made of `/`-separated names; empty and `.` segments are dropped
  (`./a//b` is `a/b`). Refused: absolute paths, `..` segments, control characters, names over
  255 bytes, paths over `StagingLimits.max_path_bytes`, two entries naming the same file, and
  a file where another entry needs a directory (`a` and `a/b`).
- Archives may hold only regular files and directories: symbolic links, hard links, devices,
  FIFOs and anything else are refused. Directory entries only check their path; directories
  come into being as the parents of files, so the digest covers everything that is staged.
- Sizes are checked against the limits before writing where the input says how big it is, and
  again while streaming, counting the bytes really read (a tar header's size is not trusted
  alone, and the decompressed stream as a whole is capped, which stops gzip bombs).
- Problems raise `InvalidArgument` whose field violations name the entry
  (`context_files[../x]`, or `context_tar_gz` with the member named in the description);
  limits raise `ResourceExhausted` naming the limit. On any error the root is emptied again.
- File modes: 0o755 when the entry has an execute bit (archives only), else 0o644.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, TypeVar

from formation_mcp.errors import FieldViolation, InvalidArgument, ResourceExhausted

_T = TypeVar("_T")

MIB: Final = 1024 * 1024
MAX_NAME_BYTES: Final = 255
MAX_VIOLATIONS: Final = 100
CHUNK_BYTES: Final = 64 * 1024
DIGEST_DOMAIN: Final = b"formation-context-v1\n"
# Decompressed bytes allowed per archive entry on top of the content limits: a header block,
# padding and room for long-name / pax records.
ENTRY_OVERHEAD_BYTES: Final = 4096

_WRITE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class StagingLimits:
    max_file_bytes: int = 8 * MIB
    max_total_bytes: int = 64 * MIB
    max_files: int = 2000
    max_path_bytes: int = 1024

    @property
    def max_archive_stream_bytes(self) -> int:
        """How far an archive may expand when decompressed (contents plus per-entry headers)."""
        return self.max_total_bytes + (2 * self.max_files + 16) * ENTRY_OVERHEAD_BYTES


@dataclass(frozen=True)
class StagedFile:
    """One staged regular file: its normalized path, execute bit, size and sha256 (hex)."""

    path: str
    executable: bool
    size: int
    sha256: str


@dataclass(frozen=True)
class ContextDigest:
    """What was staged: `digest` (hex sha256, see `context_digest`) and the files, by path."""

    digest: str
    files: tuple[StagedFile, ...] = field(default=())

    def __str__(self) -> str:
        return self.digest

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def context_digest(files: Iterable[StagedFile]) -> str:
    """Hex sha256 over the files sorted by path: (path, execute bit, size, content sha256)."""
    digest = hashlib.sha256(DIGEST_DOMAIN)
    for item in sorted(files, key=lambda f: f.path.encode("utf-8")):
        mode = "x" if item.executable else "-"
        record = json.dumps([item.path, mode, item.size, item.sha256], ensure_ascii=False)
        digest.update(record.encode("utf-8") + b"\n")
    return digest.hexdigest()


def _summary(files: Iterable[StagedFile]) -> ContextDigest:
    ordered = tuple(sorted(files, key=lambda f: f.path.encode("utf-8")))
    return ContextDigest(digest=context_digest(ordered), files=ordered)


# -- paths -------------------------------------------------------------------------------------


class _BadPath(ValueError):
    """A path breaks a rule; the message says which and what to do."""


def normalize_context_path(raw: str, limits: StagingLimits) -> str:
    """The canonical form of a context path (`a/b`), or "" for the root itself (`.`, `./`)."""
    if "\x00" in raw or any(unicodedata.category(ch) == "Cc" for ch in raw):
        raise _BadPath("contains a control character; rename the file")
    if raw.startswith("/"):
        raise _BadPath("is an absolute path; use a path relative to the build root")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _BadPath("has a .. segment; paths must stay inside the build root")
    try:
        encoded = [part.encode("utf-8") for part in parts]
    except UnicodeEncodeError:
        raise _BadPath("is not valid UTF-8; rename the file") from None
    if any(len(part) > MAX_NAME_BYTES for part in encoded):
        raise _BadPath(f"has a name longer than {MAX_NAME_BYTES} bytes; shorten it")
    path = "/".join(parts)
    if len(path.encode("utf-8")) > limits.max_path_bytes:
        raise _BadPath(f"is longer than {limits.max_path_bytes} bytes; shorten it")
    return path


def _parents(path: str) -> Iterator[str]:
    parts = path.split("/")
    for end in range(1, len(parts)):
        yield "/".join(parts[:end])


class _Layout:
    """The paths seen so far, so duplicates and file/directory clashes are caught."""

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.dirs: set[str] = set()

    def add_file(self, path: str) -> None:
        if path in self.files:
            raise _BadPath("appears more than once; give each file once")
        if path in self.dirs:
            raise _BadPath("is a file, but other entries need it to be a directory")
        self._add_parents(path)
        self.files.add(path)

    def add_dir(self, path: str) -> None:
        if path in self.files:
            raise _BadPath("is a directory, but another entry is a file of that name")
        self._add_parents(path)
        self.dirs.add(path)

    def _add_parents(self, path: str) -> None:
        for parent in _parents(path):
            if parent in self.files:
                raise _BadPath(f"needs {parent} to be a directory, but it is a file")
            self.dirs.add(parent)


# -- errors ------------------------------------------------------------------------------------


def _invalid(violations: list[FieldViolation], reason: str) -> InvalidArgument:
    first = violations[0]
    more = f" (and {len(violations) - 1} more problems)" if len(violations) > 1 else ""
    return InvalidArgument(
        f"{first.field}: {first.description}{more}",
        reason=reason,
        metadata={"field": first.field},
        field_violations=violations,
    )


def _exhausted(where: str, description: str, reason: str, limit: str, value: int) -> Exception:
    return ResourceExhausted(
        f"{where}: {description}",
        reason=reason,
        metadata={"field": where, "limit": limit, "limit_value": str(value)},
        field_violations=[FieldViolation(where, description, reason)],
    )


def _too_many_files(where: str, limits: StagingLimits) -> Exception:
    return _exhausted(
        where,
        f"the build context has more than {limits.max_files} files"
        f" (limit max_files = {limits.max_files}); send fewer files",
        "CONTEXT_TOO_MANY_FILES",
        "max_files",
        limits.max_files,
    )


def _file_too_large(where: str, size: int | None, limits: StagingLimits) -> Exception:
    actual = f"is {size} bytes" if size is not None else "is larger than the limit"
    return _exhausted(
        where,
        f"{actual}; the limit is max_file_bytes = {limits.max_file_bytes} bytes",
        "CONTEXT_FILE_TOO_LARGE",
        "max_file_bytes",
        limits.max_file_bytes,
    )


def _context_too_large(where: str, limits: StagingLimits) -> Exception:
    return _exhausted(
        where,
        f"the build context is larger than max_total_bytes = {limits.max_total_bytes} bytes;"
        " send less",
        "CONTEXT_TOO_LARGE",
        "max_total_bytes",
        limits.max_total_bytes,
    )


# -- the root ----------------------------------------------------------------------------------


def _prepare_root(root: Path) -> None:
    if root.is_symlink():
        raise ValueError(f"staging root {root} is a symbolic link")
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"staging root {root} is not empty")


def _clear_root(root: Path) -> None:
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _staged_into(root: Path, stage: Callable[[], _T]) -> _T:
    """`stage()` into a fresh `root`; on any error the root is emptied again."""
    _prepare_root(root)
    try:
        return stage()
    except BaseException:
        _clear_root(root)
        raise


class _FileSink:
    """Writes one new file under the root (never through a link), hashing what it writes."""

    def __init__(self, root: Path, path: str, executable: bool) -> None:
        target = root.joinpath(*path.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.executable = executable
        self.size = 0
        self._hash = hashlib.sha256()
        self._fd = os.open(target, _WRITE_FLAGS, 0o600)

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def close(self) -> StagedFile:
        os.fchmod(self._fd, 0o755 if self.executable else 0o644)
        os.close(self._fd)
        return StagedFile(self.path, self.executable, self.size, self._hash.hexdigest())

    def abandon(self) -> None:
        os.close(self._fd)


# -- the map form ------------------------------------------------------------------------------


def stage_files(
    files: Mapping[str, str | bytes],
    root: Path,
    limits: StagingLimits | None = None,
    *,
    field_name: str = "context_files",
) -> ContextDigest:
    """Stage a path -> content map under `root` (created, must be empty)."""
    limits = limits or StagingLimits()
    if len(files) > limits.max_files:
        raise _too_many_files(field_name, limits)
    entries = _checked_entries(files, limits, field_name)
    return _staged_into(root, lambda: _write_entries(entries, root))


def _checked_entries(
    files: Mapping[str, str | bytes], limits: StagingLimits, field_name: str
) -> list[tuple[str, bytes]]:
    violations: list[FieldViolation] = []
    layout = _Layout()
    entries: list[tuple[str, str, bytes]] = []
    for raw, content in files.items():
        try:
            path = normalize_context_path(raw, limits)
            if not path:
                raise _BadPath("names the build root itself; give a file path")
            layout.add_file(path)
            entries.append((raw, path, _content_bytes(content)))
        except _BadPath as exc:
            where = f"{field_name}[{raw}]"
            if len(violations) < MAX_VIOLATIONS:
                violations.append(FieldViolation(where, str(exc), "CONTEXT_PATH_INVALID"))
    if violations:
        raise _invalid(violations, "CONTEXT_PATH_INVALID")
    _check_sizes(entries, limits, field_name)
    return [(path, data) for _, path, data in entries]


def _content_bytes(content: str | bytes) -> bytes:
    if isinstance(content, bytes | bytearray | memoryview):
        return bytes(content)
    try:
        return content.encode("utf-8")
    except UnicodeEncodeError:
        raise _BadPath("has text that is not valid UTF-8; send it as bytes") from None


def _check_sizes(
    entries: list[tuple[str, str, bytes]], limits: StagingLimits, field_name: str
) -> None:
    total = 0
    for raw, _, data in entries:
        if len(data) > limits.max_file_bytes:
            raise _file_too_large(f"{field_name}[{raw}]", len(data), limits)
        total += len(data)
    if total > limits.max_total_bytes:
        raise _context_too_large(field_name, limits)


def _write_entries(entries: list[tuple[str, bytes]], root: Path) -> ContextDigest:
    staged = []
    for path, data in entries:
        sink = _FileSink(root, path, executable=False)
        try:
            sink.write(data)
        except BaseException:
            sink.abandon()
            raise
        staged.append(sink.close())
    return _summary(staged)


# -- the archive form --------------------------------------------------------------------------


class _CappedReader(io.RawIOBase):
    """Reads a decompressing stream, failing once more than `cap` bytes came out of it."""

    def __init__(self, source: gzip.GzipFile, cap: int, overflow: Callable[[], Exception]) -> None:
        super().__init__()
        self._source = source
        self._left = cap
        self._overflow = overflow

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = CHUNK_BYTES if size is None or size < 0 else size
        data = self._source.read(min(want, self._left + 1))
        self._left -= len(data)
        if self._left < 0:
            raise self._overflow()
        return data


_ARCHIVE_ERRORS: Final = (tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError)


def stage_tar_gz(
    data: bytes,
    root: Path,
    limits: StagingLimits | None = None,
    *,
    field_name: str = "context_tar_gz",
) -> ContextDigest:
    """Stage the regular files of a gzip-compressed tar archive under `root`."""
    limits = limits or StagingLimits()
    if len(data) > limits.max_total_bytes:
        raise _context_too_large(field_name, limits)
    return _staged_into(root, lambda: _extract(data, root, limits, field_name))


def _extract(data: bytes, root: Path, limits: StagingLimits, field_name: str) -> ContextDigest:
    def overflow() -> Exception:
        return _context_too_large(field_name, limits)

    gz = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
    stream = _CappedReader(gz, limits.max_archive_stream_bytes, overflow)
    extractor = _Extractor(root, limits, field_name)
    try:
        with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8") as archive:
            for member in archive:
                extractor.add(archive, member)
    except _ARCHIVE_ERRORS as exc:
        description = f"is not a valid gzip-compressed tar archive ({exc}); send a .tar.gz"
        raise InvalidArgument.for_field(
            field_name, description, "CONTEXT_ARCHIVE_INVALID"
        ) from None
    return _summary(extractor.staged)


def _member_kind(member: tarfile.TarInfo) -> str | None:
    """Why an archive member is refused, or None for a regular file or a directory."""
    if member.isreg() or member.isdir():
        return None
    if member.issym():
        return f"is a symbolic link (to {member.linkname}); send the file itself instead"
    if member.islnk():
        return f"is a hard link (to {member.linkname}); send the file itself instead"
    if member.ischr() or member.isblk():
        return "is a device file; only regular files and directories are allowed"
    if member.isfifo():
        return "is a FIFO; only regular files and directories are allowed"
    return "is not a regular file or directory; only those are allowed"


class _Extractor:
    def __init__(self, root: Path, limits: StagingLimits, field_name: str) -> None:
        self.root = root
        self.limits = limits
        self.field_name = field_name
        self.layout = _Layout()
        self.staged: list[StagedFile] = []
        self.entries = 0
        self.total = 0

    def _refuse(self, member: tarfile.TarInfo, problem: str, reason: str) -> InvalidArgument:
        return InvalidArgument.for_field(
            self.field_name, f"entry {json.dumps(member.name)} {problem}", reason
        )

    def add(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.entries += 1
        if self.entries > 2 * self.limits.max_files:
            raise _too_many_files(self.field_name, self.limits)
        problem = _member_kind(member)
        if problem is not None:
            raise self._refuse(member, problem, "CONTEXT_ENTRY_UNSUPPORTED")
        try:
            path = normalize_context_path(member.name, self.limits)
            if path and member.isdir():
                self.layout.add_dir(path)
            elif path:
                self.layout.add_file(path)
            elif not member.isdir():
                raise _BadPath("names the build root itself; give a file path")
        except _BadPath as exc:
            raise self._refuse(member, str(exc), "CONTEXT_PATH_INVALID") from None
        if member.isreg():
            self._add_file(archive, member, path)

    def _add_file(self, archive: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        where = f"{self.field_name}[{path}]"
        if len(self.staged) >= self.limits.max_files:
            raise _too_many_files(self.field_name, self.limits)
        if member.size > self.limits.max_file_bytes:
            raise _file_too_large(where, member.size, self.limits)
        if self.total + member.size > self.limits.max_total_bytes:
            raise _context_too_large(self.field_name, self.limits)
        source = archive.extractfile(member)
        if source is None:  # pragma: no cover - regular members always have a file object
            raise self._refuse(member, "has no content", "CONTEXT_ENTRY_UNSUPPORTED")
        sink = _FileSink(self.root, path, executable=bool(member.mode & 0o111))
        try:
            self._copy(source, sink, where)
        except BaseException:
            sink.abandon()
            raise
        self.staged.append(sink.close())

    def _copy(self, source: IO[bytes], sink: _FileSink, where: str) -> None:
        while chunk := source.read(CHUNK_BYTES):
            sink.write(chunk)
            self.total += len(chunk)
            if sink.size > self.limits.max_file_bytes:
                raise _file_too_large(where, None, self.limits)
            if self.total > self.limits.max_total_bytes:
                raise _context_too_large(self.field_name, self.limits)


# -- an existing tree --------------------------------------------------------------------------


def digest_directory(root: Path) -> ContextDigest:
    """The `ContextDigest` of a tree already staged at `root` (regular files only)."""
    staged: list[StagedFile] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(directory)
        for name in dirnames:
            if (base / name).is_symlink():
                raise ValueError(f"{base / name} is a symbolic link; a context has none")
        for name in filenames:
            staged.append(_digest_file(root, base / name))
    return _summary(staged)


def _digest_file(root: Path, path: Path) -> StagedFile:
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path} is not a regular file; a context holds only regular files")
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, _READ_FLAGS)
    with os.fdopen(fd, "rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    relative = path.relative_to(root).as_posix()
    return StagedFile(relative, bool(info.st_mode & 0o111), size, digest.hexdigest())
