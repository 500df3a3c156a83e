"""The Formfile: one model, whichever form it was written in, and the limits it must fit.

`workdir` defaults to /app in both forms (form-pack's default is /), so `to_text` always
writes WORKDIR; `from` defaults to ubuntu-22.04.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from formation_mcp.workloads.formfile.document_render import render_document
from formation_mcp.workloads.formfile.limits import MAX_ITEMS, MAX_STEPS, MAX_TEXT_BYTES
from formation_mcp.workloads.formfile.parts import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_WORKDIR,
    SYSTEM_SCOPE,
    EnvStep,
    InstallStep,
    ModelRef,
    Network,
    Resources,
    Step,
    User,
    UserStep,
)
from formation_mcp.workloads.formfile.text_render import render_text


@dataclass(frozen=True, slots=True)
class Formfile:
    """A parsed Formfile. `metadata` is sorted by key; `steps` keep the author's order."""

    name: str
    description: str | None = None
    base_image: str = DEFAULT_BASE_IMAGE
    model: ModelRef | None = None
    workdir: str = DEFAULT_WORKDIR
    includes: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    entrypoint: tuple[str, ...] = ()
    expose: tuple[int, ...] = ()
    resources: Resources = field(default_factory=Resources)
    network: Network = field(default_factory=Network)
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def env(self) -> dict[str, str]:
        """The system-scope environment after all ENV steps (a later one wins)."""
        return {
            step.key: step.value
            for step in self.steps
            if isinstance(step, EnvStep) and step.scope == SYSTEM_SCOPE
        }

    @property
    def install_packages(self) -> tuple[str, ...]:
        """Every package of every INSTALL step, in order."""
        return tuple(
            p for step in self.steps if isinstance(step, InstallStep) for p in step.packages
        )

    @property
    def users(self) -> tuple[User, ...]:
        return tuple(step.user for step in self.steps if isinstance(step, UserStep))

    def to_text(self) -> str:
        """Formation's text form (with our extension directives where needed)."""
        return render_text(self)

    def to_document(self) -> dict[str, object]:
        """The document form as JSON-serializable data."""
        return render_document(self)

    def normalized_json(self) -> str:
        """Canonical JSON of `to_document` (sorted keys, no spaces), for content digests."""
        return json.dumps(
            self.to_document(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )


def model_problems(formfile: Formfile) -> list[str]:
    """Limits on the model as a whole, the same for both forms."""
    counts = (
        ("build steps (RUN, COPY, INSTALL, ENV, USER)", len(formfile.steps), MAX_STEPS),
        ("include paths", len(formfile.includes), MAX_ITEMS),
        ("exposed ports", len(formfile.expose), MAX_ITEMS),
        ("metadata entries", len(formfile.metadata), MAX_ITEMS),
    )
    problems = [
        f"has {count} {what}; use at most {limit}" for what, count, limit in counts if count > limit
    ]
    if problems:
        return problems
    size = max(
        len(formfile.to_text().encode("utf-8")), len(formfile.normalized_json().encode("utf-8"))
    )
    if size > MAX_TEXT_BYTES:
        return [f"is {size} bytes when written out; keep it within {MAX_TEXT_BYTES} bytes"]
    return []
