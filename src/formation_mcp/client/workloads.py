"""Workload helpers for SDK users: write a Formfile in code, and pack a directory as the build
context `pack.build` takes.

The builder produces the server's own Formfile model (`formation_mcp.workloads.formfile`) and
checks it by parsing its rendered text, so a Formfile the builder accepts is one the server
accepts, and problems are reported as the server would (`FormfileError`, with line numbers).
"""

from __future__ import annotations

import base64
import gzip
import io
import os
import tarfile
from dataclasses import replace
from pathlib import Path

from formation_mcp.workloads.formfile import (
    CopyStep,
    EnvStep,
    Formfile,
    InstallStep,
    Resources,
    RunStep,
    Step,
    parse_formfile,
)

FORMFILE_NAMES = ("Formfile", "Formfile.json", "Formfile.yaml", "Formfile.yml")
"""The names `find_formfile` looks for in a context directory, in this order."""


class FormfileBuilder:
    """A Formfile, one directive per method call, each returning the builder:

    FormfileBuilder("hello").run("make").copy("site", "/app/site")
        .entrypoint("python3", "-m", "http.server").expose(8000).resources(vcpus=1).build()
    """

    def __init__(self, name: str) -> None:
        self._formfile = Formfile(name=name)
        self._steps: list[Step] = []

    def description(self, text: str) -> FormfileBuilder:
        self._formfile = replace(self._formfile, description=text)
        return self

    def base_image(self, image: str) -> FormfileBuilder:
        self._formfile = replace(self._formfile, base_image=image)
        return self

    def workdir(self, path: str) -> FormfileBuilder:
        self._formfile = replace(self._formfile, workdir=path)
        return self

    def run(self, command: str) -> FormfileBuilder:
        self._steps.append(RunStep(command))
        return self

    def copy(self, source: str, destination: str) -> FormfileBuilder:
        self._steps.append(CopyStep(source, destination))
        return self

    def install(self, *packages: str) -> FormfileBuilder:
        self._steps.append(InstallStep(tuple(packages)))
        return self

    def env(self, key: str, value: str) -> FormfileBuilder:
        self._steps.append(EnvStep(key, value))
        return self

    def include(self, *paths: str) -> FormfileBuilder:
        self._formfile = replace(self._formfile, includes=(*self._formfile.includes, *paths))
        return self

    def entrypoint(self, *argv: str) -> FormfileBuilder:
        self._formfile = replace(self._formfile, entrypoint=tuple(argv))
        return self

    def expose(self, *ports: int) -> FormfileBuilder:
        self._formfile = replace(self._formfile, expose=(*self._formfile.expose, *ports))
        return self

    def resources(
        self, *, vcpus: int | None = None, memory_mb: int | None = None, disk_gb: int | None = None
    ) -> FormfileBuilder:
        self._formfile = replace(
            self._formfile, resources=Resources(vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb)
        )
        return self

    def metadata(self, key: str, value: str) -> FormfileBuilder:
        pairs = dict(self._formfile.metadata) | {key: value}
        self._formfile = replace(self._formfile, metadata=tuple(sorted(pairs.items())))
        return self

    def build(self) -> Formfile:
        """The checked model; `FormfileError` names every problem."""
        formfile = replace(self._formfile, steps=tuple(self._steps))
        return parse_formfile(formfile.to_text())

    def to_text(self) -> str:
        """Formation's text form, what `pack.build` takes as `formfile`."""
        return self.build().to_text()


def find_formfile(directory: Path) -> Path:
    """The Formfile in `directory` (`FORMFILE_NAMES`); FileNotFoundError if none."""
    for name in FORMFILE_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no Formfile in {directory} (looked for {', '.join(FORMFILE_NAMES)})")


def pack_context(directory: Path, exclude: tuple[str, ...] = ()) -> str:
    """`directory` as a base64 .tar.gz of its regular files and directories (paths relative to
    it; `exclude` lists relative paths left out). Symbolic links and special files are skipped:
    the server refuses them in a context. Entries are sorted and their times zeroed, so the
    same files give the same archive (and the server's build cache can reuse the pack).
    A `directory` that is not one raises NotADirectoryError (never an empty context)."""
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        raise NotADirectoryError(f"the build context {directory} {what}")
    buffer = io.BytesIO()
    skipped = set(exclude)
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            base = Path(root)
            for name in [*dirs, *sorted(files)]:
                path = base / name
                relative = path.relative_to(directory).as_posix()
                if relative in skipped or path.is_symlink():
                    continue
                if not (path.is_dir() or path.is_file()):
                    continue
                info = archive.gettarinfo(str(path), arcname=relative)
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if path.is_dir():
                    archive.addfile(info)
                else:
                    with path.open("rb") as handle:
                        archive.addfile(info, handle)
            dirs[:] = [d for d in dirs if not (base / d).is_symlink()]
    return base64.b64encode(buffer.getvalue()).decode()
