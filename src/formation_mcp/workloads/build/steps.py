"""Which steps the local driver carries out, and how a step is named in logs and errors.

RUN, COPY and system-scope ENV are applied. INSTALL, USER and user/service-scope ENV are
recorded in the manifest and reported in `BuildResult.not_applied`: the local driver does not
apply them. So are the NETWORK settings other than the defaults (`join_formnet`, external
networks): the local driver's instances get loopback ports only; they are recorded on the
pack (its Formfile) and on each instance shipped from it (`network`).
"""

from __future__ import annotations

from typing import Final

from formation_mcp.workloads.formfile import (
    SYSTEM_SCOPE,
    CopyStep,
    EnvStep,
    Formfile,
    InstallStep,
    Network,
    RunStep,
    Step,
)
from formation_mcp.workloads.formfile.parts import changed_fields

NOT_APPLIED_NOTE: Final = (
    "recorded in the pack's manifest but not applied by the local driver"
    " (it installs no packages, creates no users, sets no user or service environment and"
    " joins no networks: instances get loopback ports only)"
)


def describe_step(step: Step) -> str:
    """A step as a Formfile line: `RUN make`, `COPY a /b`, `INSTALL curl jq`, `USER alice`."""
    if isinstance(step, RunStep):
        return f"RUN {step.command}"
    if isinstance(step, CopyStep):
        return f"COPY {step.source} {step.destination}"
    if isinstance(step, InstallStep):
        return f"INSTALL {' '.join(step.packages)}"
    if isinstance(step, EnvStep):
        scope = "" if step.scope == SYSTEM_SCOPE else f" ({step.scope})"
        return f"ENV {step.key}={step.value}{scope}"
    return f"USER {step.user.username}"


def is_applied(step: Step) -> bool:
    """Whether the local driver carries a step out (else it is only recorded)."""
    if isinstance(step, EnvStep):
        return step.scope == SYSTEM_SCOPE
    return isinstance(step, RunStep | CopyStep)


def describe_network(network: Network) -> str:
    """The NETWORK line of settings that differ from the defaults ('' when none do)."""
    changed = changed_fields(network)
    if not changed:
        return ""
    return " ".join(["NETWORK"] + [f"{name}:{_field_text(value)}" for name, value in changed])


def _field_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def not_applied(formfile: Formfile) -> list[str]:
    """The steps (and NETWORK settings) the local driver records but does not apply, as
    Formfile lines."""
    lines = [describe_step(step) for step in formfile.steps if not is_applied(step)]
    network = describe_network(formfile.network)
    return [*lines, network] if network else lines
