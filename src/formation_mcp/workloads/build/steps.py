"""Which steps the local driver carries out, and how a step is named in logs and errors.

RUN, COPY and system-scope ENV are applied. INSTALL, USER and user/service-scope ENV are
recorded in the manifest and reported in `BuildResult.not_applied`: the local driver does not
apply them.
"""

from __future__ import annotations

from typing import Final

from formation_mcp.workloads.formfile import (
    SYSTEM_SCOPE,
    CopyStep,
    EnvStep,
    Formfile,
    InstallStep,
    RunStep,
    Step,
)

NOT_APPLIED_NOTE: Final = (
    "recorded in the pack's manifest but not applied by the local driver"
    " (it installs no packages, creates no users and sets no user or service environment)"
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


def not_applied(formfile: Formfile) -> list[str]:
    """The steps the local driver records but does not apply, as `describe_step` lines."""
    return [describe_step(step) for step in formfile.steps if not is_applied(step)]
