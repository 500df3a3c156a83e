"""A Formfile written out in the document form (`Formfile.to_document`).

`to_document` writes the keys `users`, `install`, `copy`, `env` and `run` when they reproduce
the steps exactly (read back in their fixed order) and an explicit `steps` list otherwise, so
every model round-trips through both forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from formation_mcp.workloads.formfile.document_steps import legacy_steps
from formation_mcp.workloads.formfile.parts import (
    SYSTEM_SCOPE,
    CopyStep,
    EnvStep,
    InstallStep,
    Resources,
    RunStep,
    Step,
    UserStep,
    changed_fields,
)
from formation_mcp.workloads.formfile.problems import Problems

if TYPE_CHECKING:
    from formation_mcp.workloads.formfile.model import Formfile


def _field_document(pairs: list[tuple[str, object]]) -> dict[str, object]:
    return {name: list(v) if isinstance(v, tuple) else v for name, v in pairs}


def _step_document(step: Step) -> dict[str, object]:
    if isinstance(step, RunStep):
        return {"run": step.command}
    if isinstance(step, CopyStep):
        return {"copy": {"from": step.source, "to": step.destination}}
    if isinstance(step, InstallStep):
        return {"install": list(step.packages)}
    if isinstance(step, EnvStep):
        env: dict[str, object] = {"key": step.key, "value": step.value}
        if step.scope != SYSTEM_SCOPE:
            env["scope"] = str(step.scope)
        return {"env": env}
    return {"user": _field_document(changed_fields(step.user))}


def _legacy_document(steps: Sequence[Step]) -> dict[str, object]:
    parts: dict[str, object] = {
        "users": [_step_document(s)["user"] for s in steps if isinstance(s, UserStep)],
        "install": [p for s in steps if isinstance(s, InstallStep) for p in s.packages],
        "copy": [_step_document(s)["copy"] for s in steps if isinstance(s, CopyStep)],
        "env": {
            s.key: s.value for s in steps if isinstance(s, EnvStep) and s.scope == SYSTEM_SCOPE
        },
        "run": [s.command for s in steps if isinstance(s, RunStep)],
    }
    return {key: value for key, value in parts.items() if value}


def _steps_document(steps: tuple[Step, ...]) -> dict[str, object]:
    """The legacy keys when they give back exactly these steps; else an explicit list."""
    legacy = _legacy_document(steps)
    if legacy_steps(Problems(), legacy) == steps:
        return legacy
    return {"steps": [_step_document(step) for step in steps]}


def _resources_document(resources: Resources) -> dict[str, object]:
    document: dict[str, object] = {}
    for name in ("vcpus", "memory_mb", "disk_gb"):
        value = getattr(resources, name)
        if value is not None:
            document[name] = value
    if resources.gpu is not None:
        document["gpu"] = {"model": resources.gpu.model, "count": resources.gpu.count}
    return document


def render_document(formfile: Formfile) -> dict[str, object]:
    """`formfile` in the document form, as JSON-ready data (see the module docs)."""
    document: dict[str, object] = {"from": formfile.base_image, "name": formfile.name}
    if formfile.description is not None:
        document["description"] = formfile.description
    if formfile.model is not None:
        document["model"] = {"id": formfile.model.id, "required": formfile.model.required}
    document["workdir"] = formfile.workdir
    if formfile.includes:
        document["include"] = list(formfile.includes)
    document.update(_steps_document(formfile.steps))
    if formfile.entrypoint:
        document["entrypoint"] = list(formfile.entrypoint)
    if formfile.expose:
        document["expose"] = list(formfile.expose)
    resources = _resources_document(formfile.resources)
    if resources:
        document["resources"] = resources
    network = changed_fields(formfile.network)
    if network:
        document["network"] = _field_document(network)
    if formfile.metadata:
        document["metadata"] = dict(formfile.metadata)
    return document
