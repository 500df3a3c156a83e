"""Formfiles: a workload's build and run recipe, one model parsed from two forms.

Forms
-----
1. The document form (`document_form`): a JSON object, or the same object written in YAML,
   with the keys in `DOCUMENT_KEYS`. It is form-mcp's JSON Formfile grown to carry everything
   the text form carries (`description`, `model`, `copy`, `install`, `users`, `steps`,
   `workdir`, GPUs).
2. Formation's text Formfile (`text_form`, form-pack's `FormfileParser`): one directive per
   line, with our extensions (`FROM`, `INCLUDE`, `EXPOSE`, `NETWORK`, `METADATA`), so both
   forms carry the same model. Unlike form-pack, unknown directives, out of range values,
   repeated single-valued directives and a missing NAME are errors, with the line number.

`parse_formfile` picks the form (`detect_formfile_form`, in `parsing`); `Formfile.to_text`
and `Formfile.to_document` write a model back out (`text_render`, `document_render`), and
every model round-trips through both forms.

The modules
-----------
- `model`: the `Formfile` and the limits a whole model must fit; `parts`: what it is made of
  (steps, users, resources, network, model reference).
- `values`: the value rules both forms share; `limits`: how much a Formfile may hold;
  `problems`: `FormfileError`, every problem found in one pass, each where it was found.
- `text_form` and `text_render`: the text form, read and written.
- `document_form`, `document_steps` (the steps, explicit or the older keys) and
  `document_values` (reading objects and lists at a path): the document form, read;
  `document_render`: written.
- `parsing`: which form a text is in, and `parse_formfile`.

Build steps (RUN, COPY, INSTALL, ENV, USER) keep their order in `Formfile.steps`, as
form-pack's `build_instructions` do. Resources left out stay None: whoever runs the workload
picks the defaults. `workdir` defaults to /app in both forms (form-pack's default is /);
`from` defaults to ubuntu-22.04.
"""

from formation_mcp.workloads.formfile.document_form import DOCUMENT_KEYS, parse_formfile_document
from formation_mcp.workloads.formfile.limits import (
    MAX_ITEMS,
    MAX_LINES,
    MAX_PROBLEMS,
    MAX_STEPS,
    MAX_STRING_BYTES,
    MAX_TEXT_BYTES,
)
from formation_mcp.workloads.formfile.model import Formfile
from formation_mcp.workloads.formfile.parsing import (
    FormfileForm,
    detect_formfile_form,
    parse_formfile,
)
from formation_mcp.workloads.formfile.parts import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_SHELL,
    DEFAULT_WORKDIR,
    GPU_MODELS,
    SYSTEM_SCOPE,
    CopyStep,
    EnvScope,
    EnvStep,
    Gpu,
    InstallStep,
    ModelRef,
    Network,
    Resources,
    RunStep,
    Step,
    User,
    UserStep,
)
from formation_mcp.workloads.formfile.problems import FormfileError, FormfileProblem
from formation_mcp.workloads.formfile.text_form import TEXT_DIRECTIVES, parse_formfile_text

__all__ = [
    "DEFAULT_BASE_IMAGE",
    "DEFAULT_SHELL",
    "DEFAULT_WORKDIR",
    "DOCUMENT_KEYS",
    "GPU_MODELS",
    "MAX_ITEMS",
    "MAX_LINES",
    "MAX_PROBLEMS",
    "MAX_STEPS",
    "MAX_STRING_BYTES",
    "MAX_TEXT_BYTES",
    "SYSTEM_SCOPE",
    "TEXT_DIRECTIVES",
    "CopyStep",
    "EnvScope",
    "EnvStep",
    "Formfile",
    "FormfileError",
    "FormfileForm",
    "FormfileProblem",
    "Gpu",
    "InstallStep",
    "ModelRef",
    "Network",
    "Resources",
    "RunStep",
    "Step",
    "User",
    "UserStep",
    "detect_formfile_form",
    "parse_formfile",
    "parse_formfile_document",
    "parse_formfile_text",
]
