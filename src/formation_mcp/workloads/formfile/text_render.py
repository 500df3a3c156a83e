"""A Formfile written out in the text form (`Formfile.to_text`).

Only what differs from the defaults is written, except WORKDIR, which is always written (the
forms' defaults differ from form-pack's). ENTRYPOINT is written back as a JSON array, which
form-pack accepts; USER and NETWORK fields are shell-quoted `field:value` tokens.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING

from formation_mcp.workloads.formfile.parts import (
    DEFAULT_BASE_IMAGE,
    SYSTEM_SCOPE,
    CopyStep,
    EnvStep,
    InstallStep,
    Resources,
    RunStep,
    Step,
    changed_fields,
)

if TYPE_CHECKING:
    from formation_mcp.workloads.formfile.model import Formfile


def _field_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _field_line(keyword: str, pairs: list[tuple[str, object]]) -> str:
    return " ".join([keyword, *(shlex.quote(f"{name}:{_field_text(v)}") for name, v in pairs)])


def _step_text(step: Step) -> str:
    if isinstance(step, RunStep):
        return f"RUN {step.command}"
    if isinstance(step, CopyStep):
        return f"COPY {step.source} {step.destination}"
    if isinstance(step, InstallStep):
        return "INSTALL " + " ".join(step.packages)
    if isinstance(step, EnvStep):
        scope = "" if step.scope == SYSTEM_SCOPE else f"--scope={step.scope} "
        return f"ENV {scope}{step.key}={step.value}"
    return _field_line("USER", changed_fields(step.user))


def _resources_text(resources: Resources) -> list[str]:
    lines: list[str] = []
    if resources.vcpus is not None:
        lines.append(f"VCPU {resources.vcpus}")
    if resources.memory_mb is not None:
        lines.append(f"MEMORY {resources.memory_mb}")
    if resources.disk_gb is not None:
        lines.append(f"DISK {resources.disk_gb}")
    if resources.gpu is not None:
        lines.append(f"GPU {resources.gpu.model}:{resources.gpu.count}")
    return lines


def render_text(formfile: Formfile) -> str:
    """`formfile` in the text form (see the module docs)."""
    lines = [f"NAME {formfile.name}"]
    if formfile.description is not None:
        lines.append(f"DESCRIPTION {formfile.description}")
    if formfile.base_image != DEFAULT_BASE_IMAGE:
        lines.append(f"FROM {formfile.base_image}")
    if formfile.model is not None:
        kind = "required" if formfile.model.required else "preferred"
        lines.append(f"MODEL {kind}:{formfile.model.id}")
    lines.append(f"WORKDIR {formfile.workdir}")
    lines.extend(_resources_text(formfile.resources))
    if formfile.includes:
        lines.append("INCLUDE " + " ".join(formfile.includes))
    if formfile.expose:
        lines.append("EXPOSE " + " ".join(str(port) for port in formfile.expose))
    network_fields = changed_fields(formfile.network)
    if network_fields:
        lines.append(_field_line("NETWORK", network_fields))
    lines.extend(f"METADATA {key}={value}" for key, value in formfile.metadata)
    lines.extend(_step_text(step) for step in formfile.steps)
    if formfile.entrypoint:
        lines.append("ENTRYPOINT " + json.dumps(list(formfile.entrypoint), ensure_ascii=False))
    return "\n".join(lines) + "\n"
