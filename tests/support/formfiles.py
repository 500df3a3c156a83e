"""Formfiles the Formfile tests share: complete examples in both forms and problem helpers."""

from __future__ import annotations

import pytest

from formation_mcp.workloads.formfile import (
    CopyStep,
    EnvScope,
    EnvStep,
    Formfile,
    FormfileError,
    Gpu,
    InstallStep,
    ModelRef,
    Network,
    Resources,
    RunStep,
    User,
    UserStep,
    parse_formfile_document,
    parse_formfile_text,
)

USERNAME_RULE = "use lowercase letters, digits, _ and -, starting with a letter or _"

BOOLEAN_RULE = "use true or false (or yes/no, 1/0, on/off)"

USER_LINE = (
    "USER username:deploy passwd:'s3cret pass' "
    'ssh_authorized_keys:"ssh-ed25519 AAAA deploy@host,ssh-rsa BBBB" lock_passwd:yes '
    "sudo:true shell:/bin/zsh ssh_pwauth:off disable_root:0 chpasswd_expire:false "
    "groups:adm,docker"
)

COMPLETE_TEXT = (
    "# A complete Formfile: every directive at least once.\n"
    "NAME web-app\n"
    "DESCRIPTION A small web service\n"
    "FROM debian-12\n"
    "MODEL required:llama-3-8b\n"
    "WORKDIR /srv/app\n"
    "VCPU 2\n"
    "MEMORY 2048\n"
    "DISK 20\n"
    "GPU H100:2\n"
    "INCLUDE app requirements.txt\n"
    "EXPOSE 8080 9090\n"
    "NETWORK join_formnet:false external_networks:office,lab\n"
    "METADATA tier=gold\n"
    "METADATA team=platform\n"
    "\n"
    f"{USER_LINE}\n"
    "INSTALL python3 python3-pip\n"
    "COPY config/app.toml /etc/app.toml\n"
    "ENV --scope=service:web LOG_LEVEL=debug\n"
    "ENV PORT=8080\n"
    "RUN pip3 install -r requirements.txt\n"
    'ENTRYPOINT python3 -m "http.server" 8080\n'
)

DEPLOY_USER = User(
    username="deploy",
    passwd="s3cret pass",
    ssh_authorized_keys=("ssh-ed25519 AAAA deploy@host", "ssh-rsa BBBB"),
    lock_passwd=True,
    sudo=True,
    shell="/bin/zsh",
    ssh_pwauth=False,
    disable_root=False,
    chpasswd_expire=False,
    groups=("adm", "docker"),
)

COMPLETE_MODEL = Formfile(
    name="web-app",
    description="A small web service",
    base_image="debian-12",
    model=ModelRef("llama-3-8b", required=True),
    workdir="/srv/app",
    includes=("app", "requirements.txt"),
    steps=(
        UserStep(DEPLOY_USER),
        InstallStep(("python3", "python3-pip")),
        CopyStep("config/app.toml", "/etc/app.toml"),
        EnvStep("LOG_LEVEL", "debug", EnvScope("service", "web")),
        EnvStep("PORT", "8080"),
        RunStep("pip3 install -r requirements.txt"),
    ),
    entrypoint=("python3", "-m", "http.server", "8080"),
    expose=(8080, 9090),
    resources=Resources(vcpus=2, memory_mb=2048, disk_gb=20, gpu=Gpu("H100", 2)),
    network=Network(join_formnet=False, external_networks=("office", "lab")),
    metadata=(("team", "platform"), ("tier", "gold")),
)

DEPLOY_USER_DOCUMENT: dict[str, object] = {
    "username": "deploy",
    "passwd": "s3cret pass",
    "ssh_authorized_keys": ["ssh-ed25519 AAAA deploy@host", "ssh-rsa BBBB"],
    "lock_passwd": True,
    "sudo": True,
    "shell": "/bin/zsh",
    "ssh_pwauth": False,
    "disable_root": False,
    "chpasswd_expire": False,
    "groups": ["adm", "docker"],
}

COMPLETE_DOCUMENT: dict[str, object] = {
    "from": "debian-12",
    "name": "web-app",
    "description": "A small web service",
    "model": {"id": "llama-3-8b", "required": True},
    "workdir": "/srv/app",
    "include": ["app", "requirements.txt"],
    "steps": [
        {"user": DEPLOY_USER_DOCUMENT},
        {"install": ["python3", "python3-pip"]},
        {"copy": {"from": "config/app.toml", "to": "/etc/app.toml"}},
        {"env": {"key": "LOG_LEVEL", "value": "debug", "scope": "service:web"}},
        {"env": {"key": "PORT", "value": "8080"}},
        {"run": "pip3 install -r requirements.txt"},
    ],
    "entrypoint": ["python3", "-m", "http.server", "8080"],
    "expose": [8080, 9090],
    "resources": {
        "vcpus": 2,
        "memory_mb": 2048,
        "disk_gb": 20,
        "gpu": {"model": "H100", "count": 2},
    },
    "network": {"join_formnet": False, "external_networks": ["office", "lab"]},
    "metadata": {"team": "platform", "tier": "gold"},
}

LEGACY_DOCUMENT: dict[str, object] = {
    "from": "ubuntu-22.04",
    "name": "api",
    "workdir": "/app",
    "users": [{"username": "app"}],
    "install": ["curl", "git"],
    "copy": [{"from": "src", "to": "/app/src"}],
    "env": {"MODE": "prod", "HOST": "0.0.0.0"},
    "run": ["make", "make install"],
}

LEGACY_MODEL = Formfile(
    name="api",
    steps=(
        UserStep(User("app")),
        InstallStep(("curl", "git")),
        CopyStep("src", "/app/src"),
        EnvStep("HOST", "0.0.0.0"),
        EnvStep("MODE", "prod"),
        RunStep("make"),
        RunStep("make install"),
    ),
)


def text_of(*lines: str) -> str:
    """A Formfile with NAME on line 1 and `lines` from line 2 on."""
    return "\n".join(["NAME web", *lines]) + "\n"


def text_problems(text: str) -> list[str]:
    with pytest.raises(FormfileError) as caught:
        parse_formfile_text(text)
    return [str(problem) for problem in caught.value.problems]


def document_problems(document: object) -> list[str]:
    with pytest.raises(FormfileError) as caught:
        parse_formfile_document(document)
    return [str(problem) for problem in caught.value.problems]


def with_name(**keys: object) -> dict[str, object]:
    return {"name": "web", **keys}


def reverse_keys(value: object) -> object:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reverse_keys(value[key]) for key in reversed(value)}
    if isinstance(value, list):
        return [reverse_keys(item) for item in value]
    return value
