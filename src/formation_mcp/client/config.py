"""Where clients find the server, their key and their cached session (flags override env)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TARGET = "127.0.0.1:50051"


def config_dir() -> Path:
    if explicit := os.environ.get("FMCP_CONFIG_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fmcp"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    target: str
    key_file: Path

    @classmethod
    def resolve(cls, target: str | None = None, key_file: str | None = None) -> ClientConfig:
        return cls(
            target=target or os.environ.get("FMCP_TARGET") or DEFAULT_TARGET,
            key_file=Path(key_file or os.environ.get("FMCP_KEY_FILE") or config_dir() / "key.pem"),
        )

    @property
    def session_file(self) -> Path:
        return config_dir() / "sessions.json"


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Written atomically with mode 0600: it holds tokens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(temporary, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
