"""The parts a Formfile is made of: build steps, users, resources, network, model.

RUN, COPY, INSTALL, ENV and USER are steps (`Step`) and keep their order in
`Formfile.steps`, as form-pack's `build_instructions` do. Resources left out stay None:
whoever runs the workload picks the defaults. A user's `passwd` is kept as given (form-pack
stores a sha512-crypt hash); `shell` is kept (form-pack checks it and drops it).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final, Literal, TypeAlias

DEFAULT_BASE_IMAGE: Final = "ubuntu-22.04"
DEFAULT_WORKDIR: Final = "/app"
DEFAULT_SHELL: Final = "/bin/bash"
GPU_MODELS: Final = ("RTX5090", "H100", "H200", "B200")


@dataclass(frozen=True, slots=True)
class EnvScope:
    """Where an ENV applies: the whole system, one user's login, or one service."""

    kind: Literal["system", "user", "service"] = "system"
    name: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind == "system" else f"{self.kind}:{self.name}"


SYSTEM_SCOPE: Final = EnvScope()


@dataclass(frozen=True, slots=True)
class User:
    """A login account for the image (form-pack's USER); defaults as form-pack's."""

    username: str
    passwd: str | None = None
    ssh_authorized_keys: tuple[str, ...] = ()
    lock_passwd: bool = False
    sudo: bool = False
    shell: str = DEFAULT_SHELL
    ssh_pwauth: bool = True
    disable_root: bool = True
    chpasswd_expire: bool = True
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunStep:
    command: str


@dataclass(frozen=True, slots=True)
class CopyStep:
    """Copy `source` (relative to the build context) to `destination` in the image."""

    source: str
    destination: str


@dataclass(frozen=True, slots=True)
class InstallStep:
    packages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EnvStep:
    key: str
    value: str
    scope: EnvScope = SYSTEM_SCOPE


@dataclass(frozen=True, slots=True)
class UserStep:
    user: User


Step: TypeAlias = RunStep | CopyStep | InstallStep | EnvStep | UserStep


@dataclass(frozen=True, slots=True)
class Gpu:
    model: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class Resources:
    """Requested resources; None means not given (the runner's default applies)."""

    vcpus: int | None = None
    memory_mb: int | None = None
    disk_gb: int | None = None
    gpu: Gpu | None = None


@dataclass(frozen=True, slots=True)
class Network:
    join_formnet: bool = True
    external_networks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelRef:
    """An AI model the workload wants: `required` (MODEL required:) or preferred."""

    id: str
    required: bool = False


DEFAULT_USER: Final = User(username="")
# The fields USER and NETWORK take, by name, in both forms.
USER_FIELDS: Final = tuple(f.name for f in fields(User))
NETWORK_FIELDS: Final = tuple(f.name for f in fields(Network))


def changed_fields(value: User | Network) -> list[tuple[str, object]]:
    """(name, value) of the fields that differ from their defaults (or have none), in order."""
    return [
        (f.name, getattr(value, f.name))
        for f in fields(value)
        if getattr(value, f.name) != f.default
    ]
