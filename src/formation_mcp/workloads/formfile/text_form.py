"""Formation's text Formfile (form-pack's `FormfileParser`), with our extensions.

One directive per line; blank lines and lines starting with `#` are skipped; the keyword is
case-sensitive and everything after the first whitespace is its argument. Unlike form-pack we
reject unknown directives, out of range values, a repeated single-valued directive (NAME,
DESCRIPTION, MODEL, FROM, WORKDIR, ENTRYPOINT, VCPU, MEMORY, DISK, GPU, NETWORK) and a missing
NAME, with the line number. Our extensions, which form-pack's parser silently ignores:
`FROM <image>`, `INCLUDE <path>...`, `EXPOSE <port>...`, `NETWORK join_formnet:<bool>
external_networks:<a,b>` and `METADATA <key>=<value>`, so both forms carry the same model.

USER and NETWORK tokens are split with `shlex` (POSIX), so quote values with spaces;
`field:value` and `field=value` both work. ENV takes the rest of the line after `KEY=` as the
value, spaces included (form-pack allows no spaces in it). A leading byte-order mark is
ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar

from formation_mcp.workloads.formfile.document_form import DOCUMENT_KEYS
from formation_mcp.workloads.formfile.limits import MAX_LINES, MAX_TEXT_BYTES
from formation_mcp.workloads.formfile.model import Formfile, model_problems
from formation_mcp.workloads.formfile.parts import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_WORKDIR,
    NETWORK_FIELDS,
    SYSTEM_SCOPE,
    USER_FIELDS,
    CopyStep,
    EnvStep,
    Gpu,
    InstallStep,
    ModelRef,
    Network,
    Resources,
    RunStep,
    Step,
    UserStep,
)
from formation_mcp.workloads.formfile.problems import (
    FormfileError,
    FormfileProblem,
    Invalid,
    Problems,
    Report,
)
from formation_mcp.workloads.formfile.values import (
    DISK_GB,
    MEMORY_MB,
    PORTS,
    VCPUS,
    clip,
    context_path,
    entrypoint_argv,
    env_key,
    env_scope,
    image,
    image_path,
    json_array,
    metadata_key,
    model_id,
    network_from_values,
    one_line,
    package_list,
    parse_gpu,
    shell_words,
    show,
    user_from_values,
    value_text,
    want_int,
    within,
    workdir_path,
)

_T = TypeVar("_T")


TEXT_DIRECTIVES: Final = (
    "NAME", "DESCRIPTION", "MODEL", "RUN", "COPY", "INSTALL", "ENV", "USER",
    "VCPU", "CPU", "CORES", "MEMORY", "MEM", "MBS", "DISK", "STORAGE", "GPU", "WORKDIR",
    "ENTRYPOINT", "FROM", "INCLUDE", "EXPOSE", "NETWORK", "METADATA",
)  # fmt: skip
_ALIASES: Final = {
    "CPU": "VCPU",
    "CORES": "VCPU",
    "MEM": "MEMORY",
    "MBS": "MEMORY",
    "STORAGE": "DISK",
}
_SINGLE_VALUED: Final = frozenset(
    {"NAME", "DESCRIPTION", "MODEL", "FROM", "WORKDIR", "ENTRYPOINT"}
    | {"VCPU", "MEMORY", "DISK", "GPU", "NETWORK"}
)


def _text_limit_problems(text: str) -> list[str]:
    problems: list[str] = []
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TEXT_BYTES:
        problems.append(f"is {size} bytes; a Formfile may have at most {MAX_TEXT_BYTES} bytes")
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    if lines > MAX_LINES:
        problems.append(f"has {lines} lines; a Formfile may have at most {MAX_LINES} lines")
    return problems


def raise_for_text_limits(text: str) -> None:
    problems = _text_limit_problems(text)
    if problems:
        raise FormfileError(FormfileProblem(message) for message in problems)


def _unknown_directive(keyword: str) -> str:
    if keyword.upper() in TEXT_DIRECTIVES:
        return f"is not a directive; directives are case-sensitive, write {keyword.upper()}"
    if keyword.endswith(":"):
        return "is not a directive; a YAML Formfile must start with one of its keys: " + ", ".join(
            DOCUMENT_KEYS
        )
    return "is not a Formfile directive; use one of: " + ", ".join(TEXT_DIRECTIVES)


def _text_pair(arg: str, key_rule: Callable[[object], str]) -> tuple[str, str]:
    key, sep, value = arg.partition("=")
    if not sep:
        raise Invalid(f"{show(arg)} is not KEY=value")
    return key_rule(key.strip()), within("value", value_text, value)


def _field_tokens(arg: str, known: Sequence[str], problems: list[str]) -> dict[str, str]:
    """`field:value` / `field=value` tokens (shell quoting) into a dict, unknown ones refused."""
    values: dict[str, str] = {}
    for token in shell_words(arg):
        colon, equals = token.find(":"), token.find("=")
        cut = min((i for i in (colon, equals) if i >= 0), default=-1)
        name, value = token[:cut], token[cut + 1 :]
        if cut < 0:
            problems.append(f"{show(token)} is not field:value")
        elif name not in known:
            problems.append(f"has an unknown field {show(name)}; use one of: {', '.join(known)}")
        elif name in values:
            problems.append(f"gives {name} twice; give it once")
        else:
            values[name] = value
    return values


def _text_fields(
    arg: str,
    known: Sequence[str],
    build: Callable[[Mapping[str, object], Report], _T | None],
) -> _T:
    """A USER or NETWORK line: its tokens, then `build` from them; all problems together."""
    messages: list[str] = []
    values = _field_tokens(arg, known, messages)
    built = build(values, lambda name, message: messages.append(f"{name} {message}"))
    if built is None or messages:
        raise Invalid(*messages)
    return built


def _text_model(arg: str) -> ModelRef:
    kind, sep, ident = arg.partition(":")
    if not sep or kind.strip() not in ("required", "preferred"):
        raise Invalid(f"{show(arg)} is not required:<model id> or preferred:<model id>")
    return ModelRef(model_id(ident.strip()), required=kind.strip() == "required")


def _text_entrypoint(arg: str) -> tuple[str, ...]:
    if arg.startswith("["):
        return entrypoint_argv(json_array(arg))
    return entrypoint_argv(shell_words(arg))


def _text_network(arg: str) -> Network:
    return _text_fields(arg, NETWORK_FIELDS, network_from_values)


def _text_run(arg: str) -> Step:
    return RunStep(one_line(arg))


def _text_copy(arg: str) -> Step:
    words = arg.split()
    if len(words) != 2:
        raise Invalid(f"takes two paths, a source and a destination; got {len(words)}")
    return CopyStep(context_path(words[0]), image_path(words[1]))


def _text_install(arg: str) -> Step:
    return InstallStep(package_list(arg.split()))


def _text_env(arg: str) -> Step:
    scope = SYSTEM_SCOPE
    if arg.startswith("--scope="):
        flag, *rest = arg.split(maxsplit=1)
        scope = within("scope", env_scope, flag.removeprefix("--scope="))
        arg = rest[0] if rest else ""
    key, value = _text_pair(arg, env_key)
    return EnvStep(key, value, scope)


def _text_user(arg: str) -> Step:
    return UserStep(_text_fields(arg, USER_FIELDS, user_from_values))


_TEXT_STEPS: Final[Mapping[str, Callable[[str], Step]]] = {
    "RUN": _text_run,
    "COPY": _text_copy,
    "INSTALL": _text_install,
    "ENV": _text_env,
    "USER": _text_user,
}


class _TextParser:
    """Feeds lines in order, keeping what they set and every problem found."""

    def __init__(self) -> None:
        self.problems = Problems()
        self.seen: dict[str, int] = {}
        self.name: str | None = None
        self.description: str | None = None
        self.base_image: str = DEFAULT_BASE_IMAGE
        self.model: ModelRef | None = None
        self.workdir: str = DEFAULT_WORKDIR
        self.entrypoint: tuple[str, ...] = ()
        self.resources = Resources()
        self.network = Network()
        self.includes: list[str] = []
        self.expose: list[int] = []
        self.metadata: dict[str, str] = {}
        self.steps: list[Step] = []
        self.handlers: dict[str, Callable[[str], None]] = {
            "NAME": self._name,
            "DESCRIPTION": self._description,
            "FROM": self._from,
            "MODEL": self._model,
            "WORKDIR": self._workdir,
            "ENTRYPOINT": self._entrypoint,
            "VCPU": self._vcpus,
            "MEMORY": self._memory,
            "DISK": self._disk,
            "GPU": self._gpu,
            "NETWORK": self._network,
            "INCLUDE": self._include,
            "EXPOSE": self._expose,
            "METADATA": self._metadata,
        }

    def feed(self, number: int, raw: str) -> None:
        line = raw.strip()
        if not line or line.startswith("#"):
            return
        words = line.split(maxsplit=1)
        keyword, arg = words[0], (words[1] if len(words) > 1 else "")
        try:
            self._apply(number, keyword, arg)
        except Invalid as exc:
            for message in exc.messages:
                self.problems.add(f"{clip(keyword, 40)} {message}", line=number)

    def _apply(self, number: int, keyword: str, arg: str) -> None:
        directive = _ALIASES.get(keyword, keyword)
        step = _TEXT_STEPS.get(directive)
        handler = self.handlers.get(directive)
        if step is None and handler is None:
            raise Invalid(_unknown_directive(keyword))
        if not arg:
            raise Invalid("needs an argument")
        if directive in _SINGLE_VALUED:
            first = self.seen.setdefault(directive, number)
            if first != number:
                raise Invalid(
                    f"is a second {directive} (the first is on line {first}); give it once"
                )
        if step is not None:
            self.steps.append(step(arg))
        elif handler is not None:
            handler(arg)

    def finish(self) -> Formfile:
        if "NAME" not in self.seen:
            self.problems.add("NAME is required; add a line: NAME <workload name>")
        self.problems.raise_if_any()
        formfile = Formfile(
            name=self.name or "",
            description=self.description,
            base_image=self.base_image,
            model=self.model,
            workdir=self.workdir,
            includes=tuple(self.includes),
            steps=tuple(self.steps),
            entrypoint=self.entrypoint,
            expose=tuple(self.expose),
            resources=self.resources,
            network=self.network,
            metadata=tuple(sorted(self.metadata.items())),
        )
        for message in model_problems(formfile):
            self.problems.add(message)
        self.problems.raise_if_any()
        return formfile

    def _name(self, arg: str) -> None:
        self.name = one_line(arg)

    def _description(self, arg: str) -> None:
        self.description = one_line(arg)

    def _from(self, arg: str) -> None:
        self.base_image = image(arg)

    def _model(self, arg: str) -> None:
        self.model = _text_model(arg)

    def _workdir(self, arg: str) -> None:
        self.workdir = workdir_path(arg)

    def _entrypoint(self, arg: str) -> None:
        self.entrypoint = _text_entrypoint(arg)

    def _vcpus(self, arg: str) -> None:
        self.resources = _replace_resources(self.resources, vcpus=want_int(arg, VCPUS))

    def _memory(self, arg: str) -> None:
        self.resources = _replace_resources(self.resources, memory_mb=want_int(arg, MEMORY_MB))

    def _disk(self, arg: str) -> None:
        self.resources = _replace_resources(self.resources, disk_gb=want_int(arg, DISK_GB))

    def _gpu(self, arg: str) -> None:
        self.resources = _replace_resources(self.resources, gpu=parse_gpu(arg))

    def _network(self, arg: str) -> None:
        self.network = _text_network(arg)

    def _include(self, arg: str) -> None:
        self.includes.extend(context_path(path) for path in arg.split())

    def _expose(self, arg: str) -> None:
        ports = [want_int(word, PORTS) for word in arg.split()]
        for port in ports:
            if port in self.expose:
                raise Invalid(f"{port} is already exposed; give each port once")
            self.expose.append(port)

    def _metadata(self, arg: str) -> None:
        key, value = _text_pair(arg, metadata_key)
        if key in self.metadata:
            raise Invalid(f"key {show(key)} is already set; give each key once")
        self.metadata[key] = value


def _replace_resources(
    resources: Resources,
    *,
    vcpus: int | None = None,
    memory_mb: int | None = None,
    disk_gb: int | None = None,
    gpu: Gpu | None = None,
) -> Resources:
    return Resources(
        vcpus=resources.vcpus if vcpus is None else vcpus,
        memory_mb=resources.memory_mb if memory_mb is None else memory_mb,
        disk_gb=resources.disk_gb if disk_gb is None else disk_gb,
        gpu=resources.gpu if gpu is None else gpu,
    )


def parse_formfile_text(text: str) -> Formfile:
    """Parse Formation's text Formfile (with our extensions); raise FormfileError."""
    raise_for_text_limits(text)
    parser = _TextParser()
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        parser.feed(number, line)
    return parser.finish()
