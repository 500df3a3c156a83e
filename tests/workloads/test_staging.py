"""Staging build contexts: every escape refused, limits enforced, one digest for both forms."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
from pathlib import Path

import pytest

from formation_mcp.errors import InvalidArgument, ResourceExhausted
from formation_mcp.workloads.staging import (
    StagedFile,
    StagingLimits,
    context_digest,
    digest_directory,
    stage_files,
    stage_tar_gz,
)


def _member(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    return info


def tar_gz(*entries: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A .tar.gz holding `entries` (member, content for regular files)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in entries:
            if content is not None:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
            else:
                archive.addfile(info)
    return gzip.compress(raw.getvalue())


def files_tar(files: dict[str, bytes], mode: int = 0o644) -> bytes:
    return tar_gz(*((_member(name, mode=mode), data) for name, data in files.items()))


def _link(name: str, kind: bytes, target: str) -> tarfile.TarInfo:
    info = _member(name, kind)
    info.linkname = target
    return info


def test_map_form_stages_files_with_their_content(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    staged = stage_files({"app.py": "print('hi')\n", "data/blob.bin": b"\x00\xff"}, root)

    assert (root / "app.py").read_text() == "print('hi')\n"
    assert (root / "data" / "blob.bin").read_bytes() == b"\x00\xff"
    assert stat.S_IMODE((root / "app.py").stat().st_mode) == 0o644
    assert [f.path for f in staged.files] == ["app.py", "data/blob.bin"]
    assert staged.file_count == 2
    assert staged.total_bytes == len("print('hi')\n") + 2
    assert str(staged) == staged.digest
    assert len(staged.digest) == 64


def test_both_forms_give_the_same_digest(tmp_path: Path) -> None:
    files = {"app.py": b"print('hi')\n", "lib/util.py": b"X = 1\n", "empty": b""}
    mapped = stage_files(files, tmp_path / "a")
    archived = stage_tar_gz(
        tar_gz(
            (_member("./", tarfile.DIRTYPE, 0o755), None),
            (_member("./lib", tarfile.DIRTYPE, 0o755), None),
            (_member("./lib/util.py"), b"X = 1\n"),
            (_member("./empty"), b""),
            (_member("app.py"), b"print('hi')\n"),
        ),
        tmp_path / "b",
    )

    assert mapped.digest == archived.digest
    assert mapped.files == archived.files
    assert digest_directory(tmp_path / "a") == mapped
    assert digest_directory(tmp_path / "b") == archived


def test_digest_covers_every_byte_path_and_exec_bit(tmp_path: Path) -> None:
    base = stage_files({"a.txt": "hello"}, tmp_path / "base").digest
    assert stage_files({"a.txt": "hellp"}, tmp_path / "byte").digest != base
    assert stage_files({"b.txt": "hello"}, tmp_path / "path").digest != base
    executable = stage_tar_gz(files_tar({"a.txt": b"hello"}, mode=0o755), tmp_path / "x")
    assert executable.digest != base
    assert executable.files[0].executable
    assert stat.S_IMODE((tmp_path / "x" / "a.txt").stat().st_mode) == 0o755
    assert stage_tar_gz(files_tar({"a.txt": b"hello"}), tmp_path / "plain").digest == base


def test_context_digest_ignores_input_order() -> None:
    one = StagedFile("a", False, 1, "0" * 64)
    two = StagedFile("b", True, 2, "1" * 64)
    assert context_digest([one, two]) == context_digest([two, one])


def test_paths_are_normalized(tmp_path: Path) -> None:
    staged = stage_files({"./src//main.py": "x", "src/./lib/x.py": "y"}, tmp_path / "ctx")
    assert [f.path for f in staged.files] == ["src/lib/x.py", "src/main.py"]


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("../x", ".. segment"),
        ("a/../../x", ".. segment"),
        ("a/..", ".. segment"),
        ("/etc/passwd", "absolute"),
        ("", "build root itself"),
        (".", "build root itself"),
        ("a\x00b", "control character"),
        ("line\nbreak", "control character"),
        ("x" * 300, "longer than 255 bytes"),
    ],
)
def test_map_form_refuses_paths_that_escape(tmp_path: Path, key: str, words: str) -> None:
    root = tmp_path / "ctx"
    with pytest.raises(InvalidArgument) as caught:
        stage_files({key: "content", "fine.txt": "ok"}, root)

    [violation] = caught.value.field_violations
    assert violation.field == f"context_files[{key}]"
    assert words in violation.description
    assert caught.value.reason == "CONTEXT_PATH_INVALID"
    assert not root.exists()  # checked before anything is written


def test_map_form_refuses_duplicates_and_file_directory_clashes(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as caught:
        stage_files({"a/b": "1", "./a/b": "2", "c": "3", "c/d": "4"}, tmp_path / "ctx")

    fields = {v.field: v.description for v in caught.value.field_violations}
    assert "more than once" in fields["context_files[./a/b]"]
    assert "is a file" in fields["context_files[c/d]"]
    assert "and 1 more" in caught.value.message


def test_map_form_reports_every_bad_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as caught:
        stage_files({"../a": "", "/b": "", "ok": ""}, tmp_path / "ctx")
    assert [v.field for v in caught.value.field_violations] == [
        "context_files[../a]",
        "context_files[/b]",
    ]


@pytest.mark.parametrize(
    ("member", "words"),
    [
        (_link("evil", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
        (_link("evil", tarfile.LNKTYPE, "/etc/passwd"), "hard link"),
        (_member("evil", tarfile.CHRTYPE), "device"),
        (_member("evil", tarfile.BLKTYPE), "device"),
        (_member("evil", tarfile.FIFOTYPE), "FIFO"),
        (_member("evil", b"V"), "not a regular file"),
        (_member("/etc/evil"), "absolute"),
        (_member("../evil"), ".. segment"),
        (_member("a/../../evil"), ".. segment"),
        (_member("../dir", tarfile.DIRTYPE), ".. segment"),
    ],
)
def test_archive_refuses_entries_that_escape(
    tmp_path: Path, member: tarfile.TarInfo, words: str
) -> None:
    root = tmp_path / "ctx"
    content = b"x" if member.type == tarfile.REGTYPE else None
    data = tar_gz((_member("good.txt"), b"fine"), (member, content))

    with pytest.raises(InvalidArgument) as caught:
        stage_tar_gz(data, root)

    [violation] = caught.value.field_violations
    assert violation.field == "context_tar_gz"
    assert words in violation.description
    assert member.name in violation.description
    assert list(root.iterdir()) == []  # what was staged before is gone again


def test_archive_refuses_duplicates_and_clashes(tmp_path: Path) -> None:
    duplicate = tar_gz((_member("a.txt"), b"1"), (_member("./a.txt"), b"2"))
    with pytest.raises(InvalidArgument, match="more than once"):
        stage_tar_gz(duplicate, tmp_path / "one")
    clash = tar_gz((_member("a"), b"1"), (_member("a/b"), b"2"))
    with pytest.raises(InvalidArgument, match="is a file"):
        stage_tar_gz(clash, tmp_path / "two")


@pytest.mark.parametrize("data", [b"not gzip at all", gzip.compress(b"not a tar" * 100), b""])
def test_archive_that_is_not_a_tar_gz_is_invalid(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InvalidArgument) as caught:
        stage_tar_gz(data, tmp_path / "ctx")
    assert caught.value.reason == "CONTEXT_ARCHIVE_INVALID"
    assert caught.value.field_violations[0].field == "context_tar_gz"


def test_map_form_file_size_limit(tmp_path: Path) -> None:
    limits = StagingLimits(max_file_bytes=10)
    stage_files({"ok": b"x" * 10}, tmp_path / "fits", limits)
    with pytest.raises(ResourceExhausted) as caught:
        stage_files({"ok": b"x", "big": b"x" * 11}, tmp_path / "big", limits)
    assert caught.value.reason == "CONTEXT_FILE_TOO_LARGE"
    assert caught.value.metadata["limit"] == "max_file_bytes"
    assert caught.value.field_violations[0].field == "context_files[big]"
    assert "11 bytes" in caught.value.message


def test_map_form_total_and_count_limits(tmp_path: Path) -> None:
    limits = StagingLimits(max_total_bytes=10, max_files=3)
    with pytest.raises(ResourceExhausted) as total:
        stage_files({"a": b"x" * 6, "b": b"x" * 6}, tmp_path / "total", limits)
    assert total.value.metadata["limit"] == "max_total_bytes"
    with pytest.raises(ResourceExhausted) as count:
        stage_files({name: "" for name in "abcd"}, tmp_path / "count", limits)
    assert count.value.metadata["limit"] == "max_files"
    assert count.value.reason == "CONTEXT_TOO_MANY_FILES"


def test_archive_size_limits(tmp_path: Path) -> None:
    limits = StagingLimits(max_file_bytes=100, max_total_bytes=150, max_files=2)
    with pytest.raises(ResourceExhausted) as big:
        stage_tar_gz(files_tar({"big": b"x" * 101}), tmp_path / "big", limits)
    assert big.value.metadata["limit"] == "max_file_bytes"
    assert big.value.field_violations[0].field == "context_tar_gz[big]"
    with pytest.raises(ResourceExhausted) as total:
        stage_tar_gz(files_tar({"a": b"x" * 80, "b": b"x" * 80}), tmp_path / "total", limits)
    assert total.value.metadata["limit"] == "max_total_bytes"
    with pytest.raises(ResourceExhausted) as count:
        stage_tar_gz(files_tar({"a": b"", "b": b"", "c": b""}), tmp_path / "count", limits)
    assert count.value.metadata["limit"] == "max_files"
    assert list((tmp_path / "count").iterdir()) == []


def test_archive_expansion_is_capped_whatever_the_headers_say(tmp_path: Path) -> None:
    """A tiny file behind a huge pax header: the decompressed stream, not the header, counts."""
    limits = StagingLimits(max_file_bytes=10, max_total_bytes=1000, max_files=1)
    member = _member("small.txt")
    member.pax_headers = {"comment": "x" * (limits.max_archive_stream_bytes + 1)}
    data = tar_gz((member, b"tiny"))
    assert len(data) < limits.max_total_bytes

    with pytest.raises(ResourceExhausted) as caught:
        stage_tar_gz(data, tmp_path / "ctx", limits)
    assert caught.value.reason == "CONTEXT_TOO_LARGE"


def test_archive_larger_than_the_total_limit_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ResourceExhausted):
        stage_tar_gz(b"x" * 101, tmp_path / "ctx", StagingLimits(max_total_bytes=100))


def test_root_must_be_empty(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "left-over").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        stage_files({"a": "b"}, tmp_path / "ctx")


def test_digest_directory_refuses_links(tmp_path: Path) -> None:
    stage_files({"a": "b"}, tmp_path / "ctx")
    (tmp_path / "ctx" / "link").symlink_to(tmp_path / "ctx" / "a")
    with pytest.raises(ValueError, match="not a regular file"):
        digest_directory(tmp_path / "ctx")
