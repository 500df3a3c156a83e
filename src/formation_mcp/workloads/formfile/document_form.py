"""The document form: a JSON object, or the same object written in YAML.

Its keys are `DOCUMENT_KEYS`: form-mcp's JSON Formfile grown to carry everything the text
form carries (`description`, `model`, `copy`, `install`, `users`, `steps`, `workdir`, GPUs).
The steps are read by `document_steps`; every other key here. Unknown keys are errors, with
their path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from formation_mcp.workloads.formfile.document_steps import doc_steps
from formation_mcp.workloads.formfile.document_values import (
    convert_at,
    doc_items,
    doc_list,
    doc_object,
    doc_pairs,
    take,
)
from formation_mcp.workloads.formfile.model import Formfile, model_problems
from formation_mcp.workloads.formfile.parts import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_WORKDIR,
    NETWORK_FIELDS,
    Gpu,
    ModelRef,
    Network,
    Resources,
)
from formation_mcp.workloads.formfile.problems import (
    FormfileError,
    FormfileProblem,
    Invalid,
    Problems,
)
from formation_mcp.workloads.formfile.values import (
    DISK_GB,
    MEMORY_MB,
    PORTS,
    VCPUS,
    context_path,
    entrypoint_argv,
    gpu_count,
    gpu_model,
    image,
    kind_of,
    metadata_key,
    model_id,
    network_from_values,
    one_line,
    parse_gpu,
    shell_words,
    want_bool,
    want_int,
    want_str,
    workdir_path,
)

DOCUMENT_KEYS: Final = (
    "from", "name", "description", "model", "workdir", "include", "users", "install", "copy",
    "env", "run", "steps", "entrypoint", "expose", "resources", "network", "metadata",
)  # fmt: skip


def _doc_model(problems: Problems, value: object) -> ModelRef | None:
    if value is None:
        return None
    data = doc_object(problems, "model", value, ("id", "required"), required=("id",))
    if data is None or data.get("id") is None:
        return None
    ident = convert_at(problems, "model.id", data["id"], model_id)
    required = take(problems, "model.required", data.get("required"), want_bool)
    return None if ident is None else ModelRef(ident, required=bool(required))


def _doc_entrypoint(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return entrypoint_argv(shell_words(value))
    if isinstance(value, list | tuple):
        return entrypoint_argv(list(value))
    raise Invalid(f"must be a string or a list of strings, not {kind_of(value)}")


def _doc_expose(problems: Problems, value: object) -> tuple[int, ...]:
    ports: list[int] = []

    def build(problems: Problems, path: str, item: object) -> int | None:
        port = convert_at(problems, path, item, lambda v: want_int(v, PORTS))
        if port is not None and port in ports:
            problems.add(f"{port} is listed twice; give each port once", path=path)
            return None
        if port is not None:
            ports.append(port)
        return port

    doc_items(problems, "expose", value, build)
    return tuple(ports)


def _doc_gpu(problems: Problems, path: str, value: object) -> Gpu | None:
    """A GPU as {model, count} or as the text form's MODEL[:count]."""
    if value is None:
        return None
    if isinstance(value, str):
        return convert_at(problems, path, value, lambda text: parse_gpu(want_str(text)))
    data = doc_object(problems, path, value, ("model", "count"), required=("model",))
    if data is None or data.get("model") is None:
        return None
    model = convert_at(problems, f"{path}.model", data["model"], gpu_model)
    count = take(problems, f"{path}.count", data.get("count"), gpu_count)
    if model is None or (count is None and data.get("count") is not None):
        return None
    return Gpu(model, 1 if count is None else count)


def _doc_resources(problems: Problems, value: object) -> Resources:
    if value is None:
        return Resources()
    data = doc_object(problems, "resources", value, ("vcpus", "memory_mb", "disk_gb", "gpu"))
    if data is None:
        return Resources()
    return Resources(
        vcpus=take(problems, "resources.vcpus", data.get("vcpus"), lambda v: want_int(v, VCPUS)),
        memory_mb=take(
            problems,
            "resources.memory_mb",
            data.get("memory_mb"),
            lambda v: want_int(v, MEMORY_MB),
        ),
        disk_gb=take(
            problems, "resources.disk_gb", data.get("disk_gb"), lambda v: want_int(v, DISK_GB)
        ),
        gpu=_doc_gpu(problems, "resources.gpu", data.get("gpu")),
    )


def _doc_network(problems: Problems, value: object) -> Network:
    if value is None:
        return Network()
    data = doc_object(problems, "network", value, NETWORK_FIELDS)
    if data is None:
        return Network()

    def report(name: str, message: str) -> None:
        problems.add(message, path=f"network.{name}")

    return network_from_values(data, report) or Network()


def parse_formfile_document(data: object) -> Formfile:
    """Build a Formfile from the document form (already decoded JSON or YAML)."""
    problems = Problems()
    if not isinstance(data, Mapping):
        message = f"the Formfile must be an object of keys and values, not {kind_of(data)}"
        raise FormfileError([FormfileProblem(message)])
    document = doc_object(problems, "", data, DOCUMENT_KEYS, required=("name",)) or {}
    formfile = Formfile(
        name=take(problems, "name", document.get("name"), one_line) or "",
        description=take(problems, "description", document.get("description"), one_line),
        base_image=take(problems, "from", document.get("from"), image) or DEFAULT_BASE_IMAGE,
        model=_doc_model(problems, document.get("model")),
        workdir=take(problems, "workdir", document.get("workdir"), workdir_path) or DEFAULT_WORKDIR,
        includes=doc_list(problems, "include", document.get("include"), context_path),
        steps=doc_steps(problems, document),
        entrypoint=take(problems, "entrypoint", document.get("entrypoint"), _doc_entrypoint) or (),
        expose=_doc_expose(problems, document.get("expose")),
        resources=_doc_resources(problems, document.get("resources")),
        network=_doc_network(problems, document.get("network")),
        metadata=doc_pairs(problems, "metadata", document.get("metadata"), metadata_key),
    )
    problems.raise_if_any()
    for message in model_problems(formfile):
        problems.add(message)
    problems.raise_if_any()
    return formfile
