"""Workload helpers: the Formfile builder and the context packer (no server needed)."""

from __future__ import annotations

import base64
import io
import tarfile
from pathlib import Path

import pytest

from formation_mcp.client import FormfileBuilder, find_formfile, pack_context
from formation_mcp.workloads.formfile import FormfileError, parse_formfile


def test_the_builder_renders_a_formfile_the_parser_reads_back() -> None:
    builder = (
        FormfileBuilder("web")
        .description("a site")
        .run("make")
        .copy("site", "/app/site")
        .env("MODE", "prod")
        .entrypoint("python3", "-m", "http.server")
        .expose(8000)
        .resources(vcpus=2, memory_mb=512)
        .metadata("team", "web")
    )
    formfile = parse_formfile(builder.to_text())
    assert formfile == builder.build()
    assert formfile.expose == (8000,) and formfile.resources.vcpus == 2
    assert formfile.env == {"MODE": "prod"}


def test_the_builder_reports_problems_as_the_server_would() -> None:
    with pytest.raises(FormfileError):
        FormfileBuilder("web").resources(vcpus=100_000).build()


def _members(encoded: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(encoded)), mode="r:gz") as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member)
            out[member.name] = handle.read() if handle is not None else b""
    return out


def test_pack_context_packs_files_and_leaves_out_exclusions_and_links(tmp_path: Path) -> None:
    (tmp_path / "Formfile").write_text("NAME x\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("a")
    (tmp_path / "link").symlink_to(tmp_path / "sub" / "a.txt")
    members = _members(pack_context(tmp_path, exclude=("Formfile",)))
    assert members == {"sub": b"", "sub/a.txt": b"a"}


def test_the_same_files_give_the_same_archive(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    first = pack_context(tmp_path)
    (tmp_path / "a.txt").touch()
    assert pack_context(tmp_path) == first


def test_find_formfile_prefers_the_text_form(tmp_path: Path) -> None:
    (tmp_path / "Formfile.yaml").write_text("name: y\n")
    assert find_formfile(tmp_path).name == "Formfile.yaml"
    (tmp_path / "Formfile").write_text("NAME x\n")
    assert find_formfile(tmp_path).name == "Formfile"


def test_a_missing_context_directory_is_an_error_not_an_empty_context(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match=r"site does not exist"):
        pack_context(tmp_path / "site")


def test_a_file_as_the_context_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print()\n")
    with pytest.raises(NotADirectoryError, match=r"app.py is not a directory"):
        pack_context(tmp_path / "app.py")
