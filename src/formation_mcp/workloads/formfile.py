"""Formfiles: a workload's build and run recipe, one model parsed from two forms.

Forms
-----
1. The document form: a JSON object, or the same object written in YAML, with the keys in
   `DOCUMENT_KEYS`. It is form-mcp's JSON Formfile grown to carry everything the text form
   carries (`description`, `model`, `copy`, `install`, `users`, `steps`, `workdir`, GPUs).
2. Formation's text Formfile (form-pack's `FormfileParser`): one directive per line; blank lines
   and lines starting with `#` are skipped; the keyword is case-sensitive and everything after
   the first whitespace is its argument. Unlike form-pack we reject unknown directives, out of
   range values, a repeated single-valued directive (NAME, DESCRIPTION, MODEL, FROM, WORKDIR,
   ENTRYPOINT, VCPU, MEMORY, DISK, GPU, NETWORK) and a missing NAME, with the line number.
   Our extensions, which form-pack's parser silently ignores: `FROM <image>`,
   `INCLUDE <path>...`, `EXPOSE <port>...`, `NETWORK join_formnet:<bool>
   external_networks:<a,b>` and `METADATA <key>=<value>`, so both forms carry the same model.

`parse_formfile` picks the form (`detect_formfile_form`): text whose first non-blank
character is `{` or `[` is JSON; text whose first line that is not blank, a `#` comment or
`---` reads `key:` (followed by whitespace or the end of the line) with `key` in
`DOCUMENT_KEYS` is YAML; anything else is the text form.

Build steps
-----------
RUN, COPY, INSTALL, ENV and USER keep their order in `Formfile.steps`, as form-pack's
`build_instructions` do. A document gives them either as an explicit `steps` list
(`{"run": cmd}`, `{"copy": {"from", "to"}}`, `{"install": [pkg...]}`,
`{"env": {"key", "value", "scope"?}}`, `{"user": {...}}`) or through the keys `users`,
`install`, `copy`, `env` and `run`, never both. Those keys become steps in the fixed order
users, install (one step with all packages), copy, env (sorted by key, system scope), run,
each in list order. `Formfile.to_document` writes those keys when they reproduce the steps
exactly and an explicit `steps` list otherwise, so every model round-trips through both forms.

Decisions
---------
- `workdir` defaults to /app in both forms (form-pack's default is /), so `to_text` always
  writes WORKDIR; `from` defaults to ubuntu-22.04.
- Resources left out stay None: whoever runs the workload picks the defaults.
- A user's `passwd` is kept as given (form-pack stores a sha512-crypt hash); `shell` is kept
  (form-pack checks it and drops it). USER and NETWORK tokens are split with `shlex`
  (POSIX), so quote values with spaces; `field:value` and `field=value` both work.
- ENV takes the rest of the line after `KEY=` as the value, spaces included (form-pack allows
  no spaces in it). ENTRYPOINT is written back as a JSON array, which form-pack accepts.
- Strings are stripped of surrounding whitespace where the text form would strip them and may
  not hold line breaks or control characters. Copy sources and includes are relative paths
  with no `..` segment; copy destinations have no `..` segment.
- Limits: the text (any form) at most `MAX_TEXT_BYTES` and `MAX_LINES`; strings at most
  `MAX_STRING_BYTES`; at most `MAX_STEPS` steps and `MAX_ITEMS` entries in any list or map.
  A parsed model must also fit `MAX_TEXT_BYTES` both as text and as `normalized_json`, so
  what one form accepts the other accepts too.
- ENV and METADATA values in a document may be whole numbers (YAML's `PORT: 8080`); whole
  floats count as whole numbers (protobuf Struct numbers are doubles).
- Problems are collected in one pass: every line and every document field is checked (a line
  stops at its first bad value, except USER and NETWORK, which report each bad field), up to
  `MAX_PROBLEMS`. `FormfileError.field_violations` turns them into BadRequest pairs.
- A leading byte-order mark is ignored. YAML needs PyYAML, imported when first needed.
- The document form is loaded with bounded work (`workloads.documents`: depth, values and
  YAML aliases are limited before anything is built), and error messages show values through
  `previews.preview`, which stops writing at the message's length.
"""

from __future__ import annotations

import json
import re
import shlex
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field, fields
from typing import Final, Literal, TypeAlias, TypeVar

from formation_mcp.previews import preview
from formation_mcp.workloads.documents import DocumentError, load_json, load_yaml

_T = TypeVar("_T")

DEFAULT_BASE_IMAGE: Final = "ubuntu-22.04"
DEFAULT_WORKDIR: Final = "/app"
DEFAULT_SHELL: Final = "/bin/bash"
GPU_MODELS: Final = ("RTX5090", "H100", "H200", "B200")
MAX_TEXT_BYTES: Final = 64 * 1024
MAX_LINES: Final = 1000
MAX_STRING_BYTES: Final = 4 * 1024
MAX_STEPS: Final = 256
MAX_ITEMS: Final = 256
MAX_PROBLEMS: Final = 100

TEXT_DIRECTIVES: Final = (
    "NAME", "DESCRIPTION", "MODEL", "RUN", "COPY", "INSTALL", "ENV", "USER",
    "VCPU", "CPU", "CORES", "MEMORY", "MEM", "MBS", "DISK", "STORAGE", "GPU", "WORKDIR",
    "ENTRYPOINT", "FROM", "INCLUDE", "EXPOSE", "NETWORK", "METADATA",
)  # fmt: skip
DOCUMENT_KEYS: Final = (
    "from", "name", "description", "model", "workdir", "include", "users", "install", "copy",
    "env", "run", "steps", "entrypoint", "expose", "resources", "network", "metadata",
)  # fmt: skip

FormfileForm: TypeAlias = Literal["json", "yaml", "text"]


# -- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormfileProblem:
    """One thing to fix: at a text `line`, at a document `path` (`resources.vcpus`), or overall."""

    message: str
    line: int | None = None
    path: str = ""

    @property
    def where(self) -> str:
        """`line 7`, `resources.memory_mb`, or "" for the Formfile as a whole."""
        return f"line {self.line}" if self.line is not None else self.path

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class FormfileError(ValueError):
    """The Formfile is not valid; `problems` lists everything found, in order."""

    def __init__(self, problems: Iterable[FormfileProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid Formfile")

    def field_violations(self, field_name: str = "formfile") -> list[tuple[str, str]]:
        """(field, description) pairs for a `BadRequest`.

        A document path becomes part of the field (`formfile.resources.vcpus`); a text line
        stays in the description (`line 7: ...`) with the field alone.
        """
        return [_violation(field_name, problem) for problem in self.problems]


def _violation(field_name: str, problem: FormfileProblem) -> tuple[str, str]:
    where = f"{field_name}.{problem.path}" if problem.path else field_name
    message = problem.message if problem.line is None else f"line {problem.line}: {problem.message}"
    return where, message


class _Problems:
    def __init__(self) -> None:
        self.items: list[FormfileProblem] = []

    def add(self, message: str, *, line: int | None = None, path: str = "") -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(FormfileProblem(message, line=line, path=path))

    def raise_if_any(self) -> None:
        if self.items:
            raise FormfileError(self.items)


class _Invalid(Exception):
    """A value is wrong; each message reads well after a keyword or a `path: `."""

    def __init__(self, *messages: str) -> None:
        super().__init__(*messages)
        self.messages = messages


_Report: TypeAlias = Callable[[str, str], None]  # (field, message)


# -- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvScope:
    """Where an ENV applies: the whole system, one user's login, or one service."""

    kind: Literal["system", "user", "service"] = "system"
    name: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind == "system" else f"{self.kind}:{self.name}"


SYSTEM_SCOPE: Final = EnvScope()


@dataclass(frozen=True, slots=True)
class User:
    """A login account for the image (form-pack's USER); defaults as form-pack's."""

    username: str
    passwd: str | None = None
    ssh_authorized_keys: tuple[str, ...] = ()
    lock_passwd: bool = False
    sudo: bool = False
    shell: str = DEFAULT_SHELL
    ssh_pwauth: bool = True
    disable_root: bool = True
    chpasswd_expire: bool = True
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunStep:
    command: str


@dataclass(frozen=True, slots=True)
class CopyStep:
    """Copy `source` (relative to the build context) to `destination` in the image."""

    source: str
    destination: str


@dataclass(frozen=True, slots=True)
class InstallStep:
    packages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EnvStep:
    key: str
    value: str
    scope: EnvScope = SYSTEM_SCOPE


@dataclass(frozen=True, slots=True)
class UserStep:
    user: User


Step: TypeAlias = RunStep | CopyStep | InstallStep | EnvStep | UserStep


@dataclass(frozen=True, slots=True)
class Gpu:
    model: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class Resources:
    """Requested resources; None means not given (the runner's default applies)."""

    vcpus: int | None = None
    memory_mb: int | None = None
    disk_gb: int | None = None
    gpu: Gpu | None = None


@dataclass(frozen=True, slots=True)
class Network:
    join_formnet: bool = True
    external_networks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelRef:
    """An AI model the workload wants: `required` (MODEL required:) or preferred."""

    id: str
    required: bool = False


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
        return _render_text(self)

    def to_document(self) -> dict[str, object]:
        """The document form as JSON-serializable data."""
        return _render_document(self)

    def normalized_json(self) -> str:
        """Canonical JSON of `to_document` (sorted keys, no spaces), for content digests."""
        return json.dumps(
            self.to_document(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )


_DEFAULT_USER: Final = User(username="")
_USER_FIELDS: Final = tuple(f.name for f in fields(User))
_NETWORK_FIELDS: Final = tuple(f.name for f in fields(Network))
_STEP_KEYS: Final = ("run", "copy", "install", "env", "user")
_LEGACY_STEP_KEYS: Final = ("users", "install", "copy", "env", "run")


# -- value rules shared by both forms --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Range:
    low: int
    high: int
    unit: str = ""

    def __str__(self) -> str:
        return f"{self.low} to {self.high}{self.unit}"


_VCPUS: Final = _Range(1, 128)
_MEMORY_MB: Final = _Range(512, 256_000, " (MB)")
_DISK_GB: Final = _Range(5, 65_535, " (GB)")
_GPU_COUNT: Final = _Range(1, 8)
_PORTS: Final = _Range(1, 65_535)

_PACKAGE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.:=~/_-]*")
_ENV_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_USERNAME: Final = re.compile(r"[a-z_][a-z0-9_-]*")
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})
_TRUE_WORDS: Final = frozenset({"true", "yes", "1", "on"})
_FALSE_WORDS: Final = frozenset({"false", "no", "0", "off"})


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: object) -> str:
    """A value as it would be written in JSON, shortened for messages (at a cost bounded by
    the message, however large the value: see `previews`)."""
    return preview(value)


def _within(subject: str, convert: Callable[[object], _T], value: object) -> _T:
    """`convert(value)`, with `subject` put before any complaint."""
    try:
        return convert(value)
    except _Invalid as exc:
        raise _Invalid(*(f"{subject} {message}" for message in exc.messages)) from None


def _check_count(items: Sized) -> None:
    if len(items) > MAX_ITEMS:
        raise _Invalid(f"has {len(items)} entries; use at most {MAX_ITEMS}")


def _check_size(text: str) -> str:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_STRING_BYTES:
        raise _Invalid(f"is too long ({size} bytes); use at most {MAX_STRING_BYTES} bytes")
    return text


def _want_str(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, not {_kind(value)}")
    return value


def _one_line(value: object, *, allow_empty: bool = False) -> str:
    """A string that fits on one text line: stripped, no line breaks or control characters."""
    text = _check_size(_want_str(value).strip())
    if any(ch != "\t" and unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in text):
        raise _Invalid("contains a line break or control character; keep it on one line")
    if not text and not allow_empty:
        raise _Invalid("is empty; give a value")
    return text


def _word(value: object, what: str) -> str:
    text = _one_line(value)
    if any(ch.isspace() for ch in text):
        raise _Invalid(f"{_show(text)} has whitespace in it; a {what} is a single word")
    return text


def _value_text(value: object) -> str:
    """An ENV or METADATA value: may be empty; a whole number is taken as its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _one_line(value, allow_empty=True)


def _image(value: object) -> str:
    return _word(value, "base image name")


def _context_path(value: object) -> str:
    path = _word(value, "path")
    if path.startswith("/"):
        raise _Invalid(f"{_show(path)} is absolute; use a path relative to the build context")
    if ".." in path.split("/"):
        raise _Invalid(f"{_show(path)} has a .. segment; stay inside the build context")
    return path


def _image_path(value: object) -> str:
    path = _word(value, "path")
    if ".." in path.split("/"):
        raise _Invalid(f"{_show(path)} has a .. segment; name the destination without ..")
    return path


def _workdir_path(value: object) -> str:
    path = _one_line(value)
    if not path.startswith("/"):
        raise _Invalid(f"{_show(path)} is not an absolute path; start it with /")
    if {".", ".."} & set(path.split("/")):
        raise _Invalid(f"{_show(path)} has a . or .. segment; write the path without them")
    return path


def _package(value: object) -> str:
    name = _word(value, "package name")
    if not _PACKAGE.fullmatch(name):
        raise _Invalid(
            f"{_show(name)} is not an apt package name; use letters, digits and + . : = ~ / _ -"
            ", starting with a letter or digit"
        )
    return name


def _packages(values: Sequence[object]) -> tuple[str, ...]:
    if not values:
        raise _Invalid("needs at least one package")
    _check_count(values)
    return tuple(_package(value) for value in values)


def _env_key(value: object) -> str:
    key = _one_line(value)
    if not _ENV_KEY.fullmatch(key):
        raise _Invalid(
            f"key {_show(key)} is not a valid name; use letters, digits and _"
            ", not starting with a digit"
        )
    return key


def _username(value: object) -> str:
    name = _one_line(value)
    if len(name) > 32:
        raise _Invalid(f"{_show(name)} is longer than 32 characters")
    if not _USERNAME.fullmatch(name):
        raise _Invalid(
            f"{_show(name)} is not a valid username; use lowercase letters, digits, _ and -"
            ", starting with a letter or _"
        )
    return name


def _scope(value: object) -> EnvScope:
    text = _word(value, "scope")
    kind, sep, name = text.partition(":")
    if text == "system":
        return SYSTEM_SCOPE
    if sep and kind == "user":
        return EnvScope("user", _within("user", _username, name))
    if sep and kind == "service":
        return EnvScope("service", _within("service", _service_name, name))
    raise _Invalid(f"{_show(text)} is not valid; use system, user:<name> or service:<name>")


def _service_name(value: object) -> str:
    return _word(value, "service name")


def _model_id(value: object) -> str:
    ident = _word(value, "model id")
    if ":" in ident:
        raise _Invalid(f"{_show(ident)} has a ':' in it; a model id can't")
    return ident


def _gpu_model(value: object) -> str:
    model = _word(value, "GPU model")
    if model not in GPU_MODELS:
        raise _Invalid(
            f"{_show(model)} is not a supported GPU model; use one of {', '.join(GPU_MODELS)}"
        )
    return model


def _metadata_key(value: object) -> str:
    key = _word(value, "metadata key")
    if "=" in key:
        raise _Invalid(f"key {_show(key)} has an = in it; a metadata key can't")
    return key


def _list_word(value: object, what: str) -> str:
    """A word in a comma-separated list (a group, a network): no spaces, no commas."""
    text = _word(value, what)
    if "," in text:
        raise _Invalid(f"{_show(text)} has a comma in it; a {what} can't")
    return text


def _ssh_key(value: object) -> str:
    key = _one_line(value)
    if "," in key:
        raise _Invalid(f"{_show(key)} has a comma in it; an ssh key can't")
    return key


def _passwd(value: object) -> str:
    text = _want_str(value)
    if not text:
        raise _Invalid("is empty; give a password or leave it out")
    _check_size(text)
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in text):
        raise _Invalid("contains a line break or control character")
    return text


def _shell(value: object) -> str:
    path = _one_line(value)
    if not path.startswith("/"):
        raise _Invalid(f"{_show(path)} is not an absolute path; start it with /")
    return path


def _want_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise _Invalid(f"{_show(value)} is not a boolean; use true or false (or yes/no, 1/0, on/off)")


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value) if len(value) <= 20 else 10**20
    return None


def _want_int(value: object, allowed: _Range) -> int:
    number = _as_int(value)
    if number is None:
        raise _Invalid(f"{_show(value)} is not a whole number; use {allowed}")
    if not allowed.low <= number <= allowed.high:
        shown = _clip(value) if isinstance(value, str) else str(number)
        raise _Invalid(f"{shown} is out of range; use {allowed}")
    return number


def _comma_list(value: object, item: Callable[[object], str]) -> tuple[str, ...]:
    """A list of strings, or one comma-separated string (the text form's way)."""
    if isinstance(value, str):
        raw: list[object] = list(value.split(","))
    elif isinstance(value, list | tuple):
        raw = list(value)
    else:
        raise _Invalid(f"must be a list or a comma-separated string, not {_kind(value)}")
    _check_count(raw)
    return tuple(item(entry) for entry in raw)


def _ssh_keys(value: object) -> tuple[str, ...]:
    return _comma_list(value, _ssh_key)


def _groups(value: object) -> tuple[str, ...]:
    return _comma_list(value, lambda entry: _list_word(entry, "group name"))


def _networks(value: object) -> tuple[str, ...]:
    return _comma_list(value, lambda entry: _list_word(entry, "network name"))


def _argv(values: Sequence[object]) -> tuple[str, ...]:
    """An entrypoint: program and arguments, passed to exec as they are."""
    if not values:
        raise _Invalid("is empty; give the program to run")
    _check_count(values)
    argv = tuple(_check_size(_want_str(value)) for value in values)
    if any("\x00" in arg for arg in argv):
        raise _Invalid("has a NUL character in it")
    if not argv[0].strip():
        raise _Invalid("starts with an empty word; the first word is the program to run")
    return argv


def _shell_words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise _Invalid(f"{_show(text)} can't be split into words ({str(exc).lower()})") from None


def _json_array(text: str) -> list[object]:
    try:
        data: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"is not a valid JSON array ({exc.msg})") from None
    except RecursionError:
        raise _Invalid("is not a valid JSON array (nested too deeply)") from None
    except ValueError:  # a number over Python's 4,300-digit conversion limit
        raise _Invalid("is not a valid JSON array (a number in it is too long)") from None
    if not isinstance(data, list):
        raise _Invalid(f"must be a JSON array of strings, not {_kind(data)}")
    return data


class _FieldReader:
    """Reads optional named fields with converters, reporting each bad one."""

    def __init__(self, values: Mapping[str, object], report: _Report) -> None:
        self.values = values
        self.report = report
        self.ok = True

    def get(self, name: str, convert: Callable[[object], _T], default: _T) -> _T:
        value = self.values.get(name)
        if value is None:
            return default
        try:
            return convert(value)
        except _Invalid as exc:
            self.ok = False
            for message in exc.messages:
                self.report(name, message)
            return default


def _user_from_values(values: Mapping[str, object], report: _Report) -> User | None:
    """A USER's fields, as text strings or as document values, checked the same way."""
    reader = _FieldReader(values, report)
    if values.get("username") is None:
        reader.ok = False
        report("username", "is required")
    d = _DEFAULT_USER
    user = User(
        username=reader.get("username", _username, d.username),
        passwd=reader.get("passwd", _passwd, d.passwd),
        ssh_authorized_keys=reader.get("ssh_authorized_keys", _ssh_keys, d.ssh_authorized_keys),
        lock_passwd=reader.get("lock_passwd", _want_bool, d.lock_passwd),
        sudo=reader.get("sudo", _want_bool, d.sudo),
        shell=reader.get("shell", _shell, d.shell),
        ssh_pwauth=reader.get("ssh_pwauth", _want_bool, d.ssh_pwauth),
        disable_root=reader.get("disable_root", _want_bool, d.disable_root),
        chpasswd_expire=reader.get("chpasswd_expire", _want_bool, d.chpasswd_expire),
        groups=reader.get("groups", _groups, d.groups),
    )
    return user if reader.ok else None


def _network_from_values(values: Mapping[str, object], report: _Report) -> Network | None:
    reader = _FieldReader(values, report)
    network = Network(
        join_formnet=reader.get("join_formnet", _want_bool, True),
        external_networks=reader.get("external_networks", _networks, ()),
    )
    return network if reader.ok else None


def _model_problems(formfile: Formfile) -> list[str]:
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


# -- the text form -----------------------------------------------------------------------------

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


def _raise_for_text_limits(text: str) -> None:
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
        raise _Invalid(f"{_show(arg)} is not KEY=value")
    return key_rule(key.strip()), _within("value", _value_text, value)


def _field_tokens(arg: str, known: Sequence[str], problems: list[str]) -> dict[str, str]:
    """`field:value` / `field=value` tokens (shell quoting) into a dict, unknown ones refused."""
    values: dict[str, str] = {}
    for token in _shell_words(arg):
        colon, equals = token.find(":"), token.find("=")
        cut = min((i for i in (colon, equals) if i >= 0), default=-1)
        name, value = token[:cut], token[cut + 1 :]
        if cut < 0:
            problems.append(f"{_show(token)} is not field:value")
        elif name not in known:
            problems.append(f"has an unknown field {_show(name)}; use one of: {', '.join(known)}")
        elif name in values:
            problems.append(f"gives {name} twice; give it once")
        else:
            values[name] = value
    return values


def _text_fields(
    arg: str,
    known: Sequence[str],
    build: Callable[[Mapping[str, object], _Report], _T | None],
) -> _T:
    """A USER or NETWORK line: its tokens, then `build` from them; all problems together."""
    messages: list[str] = []
    values = _field_tokens(arg, known, messages)
    built = build(values, lambda name, message: messages.append(f"{name} {message}"))
    if built is None or messages:
        raise _Invalid(*messages)
    return built


def _text_model(arg: str) -> ModelRef:
    kind, sep, ident = arg.partition(":")
    if not sep or kind.strip() not in ("required", "preferred"):
        raise _Invalid(f"{_show(arg)} is not required:<model id> or preferred:<model id>")
    return ModelRef(_model_id(ident.strip()), required=kind.strip() == "required")


def _text_gpu(arg: str) -> Gpu:
    model, sep, count = arg.partition(":")
    if not sep:
        return Gpu(_gpu_model(model.strip()))
    return Gpu(_gpu_model(model.strip()), _within("count", _want_int_gpu, count.strip()))


def _want_int_gpu(value: object) -> int:
    return _want_int(value, _GPU_COUNT)


def _text_entrypoint(arg: str) -> tuple[str, ...]:
    if arg.startswith("["):
        return _argv(_json_array(arg))
    return _argv(_shell_words(arg))


def _text_network(arg: str) -> Network:
    return _text_fields(arg, _NETWORK_FIELDS, _network_from_values)


def _text_run(arg: str) -> Step:
    return RunStep(_one_line(arg))


def _text_copy(arg: str) -> Step:
    words = arg.split()
    if len(words) != 2:
        raise _Invalid(f"takes two paths, a source and a destination; got {len(words)}")
    return CopyStep(_context_path(words[0]), _image_path(words[1]))


def _text_install(arg: str) -> Step:
    return InstallStep(_packages(arg.split()))


def _text_env(arg: str) -> Step:
    scope = SYSTEM_SCOPE
    if arg.startswith("--scope="):
        flag, *rest = arg.split(maxsplit=1)
        scope = _within("scope", _scope, flag.removeprefix("--scope="))
        arg = rest[0] if rest else ""
    key, value = _text_pair(arg, _env_key)
    return EnvStep(key, value, scope)


def _text_user(arg: str) -> Step:
    return UserStep(_text_fields(arg, _USER_FIELDS, _user_from_values))


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
        self.problems = _Problems()
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
        except _Invalid as exc:
            for message in exc.messages:
                self.problems.add(f"{_clip(keyword, 40)} {message}", line=number)

    def _apply(self, number: int, keyword: str, arg: str) -> None:
        directive = _ALIASES.get(keyword, keyword)
        step = _TEXT_STEPS.get(directive)
        handler = self.handlers.get(directive)
        if step is None and handler is None:
            raise _Invalid(_unknown_directive(keyword))
        if not arg:
            raise _Invalid("needs an argument")
        if directive in _SINGLE_VALUED:
            first = self.seen.setdefault(directive, number)
            if first != number:
                raise _Invalid(
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
        for message in _model_problems(formfile):
            self.problems.add(message)
        self.problems.raise_if_any()
        return formfile

    def _name(self, arg: str) -> None:
        self.name = _one_line(arg)

    def _description(self, arg: str) -> None:
        self.description = _one_line(arg)

    def _from(self, arg: str) -> None:
        self.base_image = _image(arg)

    def _model(self, arg: str) -> None:
        self.model = _text_model(arg)

    def _workdir(self, arg: str) -> None:
        self.workdir = _workdir_path(arg)

    def _entrypoint(self, arg: str) -> None:
        self.entrypoint = _text_entrypoint(arg)

    def _vcpus(self, arg: str) -> None:
        self.resources = _replace_resources(self.resources, vcpus=_want_int(arg, _VCPUS))

    def _memory(self, arg: str) -> None:
        self.resources = _replace_resources(self.resources, memory_mb=_want_int(arg, _MEMORY_MB))

    def _disk(self, arg: str) -> None:
        self.resources = _replace_resources(self.resources, disk_gb=_want_int(arg, _DISK_GB))

    def _gpu(self, arg: str) -> None:
        self.resources = _replace_resources(self.resources, gpu=_text_gpu(arg))

    def _network(self, arg: str) -> None:
        self.network = _text_network(arg)

    def _include(self, arg: str) -> None:
        self.includes.extend(_context_path(path) for path in arg.split())

    def _expose(self, arg: str) -> None:
        ports = [_want_int(word, _PORTS) for word in arg.split()]
        for port in ports:
            if port in self.expose:
                raise _Invalid(f"{port} is already exposed; give each port once")
            self.expose.append(port)

    def _metadata(self, arg: str) -> None:
        key, value = _text_pair(arg, _metadata_key)
        if key in self.metadata:
            raise _Invalid(f"key {_show(key)} is already set; give each key once")
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
    _raise_for_text_limits(text)
    parser = _TextParser()
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        parser.feed(number, line)
    return parser.finish()


def _field_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _changed_fields(value: User | Network) -> list[tuple[str, object]]:
    """(name, value) of the fields that differ from their defaults (or have none), in order."""
    return [
        (f.name, getattr(value, f.name))
        for f in fields(value)
        if getattr(value, f.name) != f.default
    ]


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
    return _field_line("USER", _changed_fields(step.user))


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


def _render_text(formfile: Formfile) -> str:
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
    network_fields = _changed_fields(formfile.network)
    if network_fields:
        lines.append(_field_line("NETWORK", network_fields))
    lines.extend(f"METADATA {key}={value}" for key, value in formfile.metadata)
    lines.extend(_step_text(step) for step in formfile.steps)
    if formfile.entrypoint:
        lines.append("ENTRYPOINT " + json.dumps(list(formfile.entrypoint), ensure_ascii=False))
    return "\n".join(lines) + "\n"


# -- the document form -------------------------------------------------------------------------


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _convert(
    problems: _Problems, path: str, value: object, convert: Callable[[object], _T]
) -> _T | None:
    try:
        return convert(value)
    except _Invalid as exc:
        for message in exc.messages:
            problems.add(message, path=path)
        return None


def _take(
    problems: _Problems, path: str, value: object, convert: Callable[[object], _T]
) -> _T | None:
    """Like `_convert`, but a missing (None) value is simply absent."""
    return None if value is None else _convert(problems, path, value, convert)


def _doc_object(
    problems: _Problems,
    path: str,
    value: object,
    known: Sequence[str],
    required: Sequence[str] = (),
) -> dict[str, object] | None:
    """An object's known keys; unknown or missing required keys are reported."""
    if not isinstance(value, Mapping):
        problems.add(f"must be an object, not {_kind(value)}", path=path)
        return None
    for key in value:
        if key not in known:
            message = f"unknown key {_show(key)}; use one of: {', '.join(known)}"
            problems.add(message, path=_join(path, key))
    for key in required:
        if value.get(key) is None:
            problems.add("is required", path=_join(path, key))
    return {key: item for key, item in value.items() if key in known}


def _doc_items(
    problems: _Problems,
    path: str,
    value: object,
    build: Callable[[_Problems, str, object], _T | None],
) -> list[_T]:
    """Each entry of a list built by `build`; a missing list is empty."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        problems.add(f"must be a list, not {_kind(value)}", path=path)
        return []
    if len(value) > MAX_ITEMS:
        problems.add(f"has {len(value)} entries; use at most {MAX_ITEMS}", path=path)
        return []
    built = (build(problems, f"{path}[{index}]", item) for index, item in enumerate(value))
    return [item for item in built if item is not None]


def _doc_list(
    problems: _Problems, path: str, value: object, convert: Callable[[object], _T]
) -> tuple[_T, ...]:
    def build(problems: _Problems, path: str, item: object) -> _T | None:
        return _convert(problems, path, item, convert)

    return tuple(_doc_items(problems, path, value, build))


def _doc_pairs(
    problems: _Problems, path: str, value: object, key_rule: Callable[[object], str]
) -> tuple[tuple[str, str], ...]:
    """A {key: value} object of strings, sorted by key."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        problems.add(f"must be an object, not {_kind(value)}", path=path)
        return ()
    if len(value) > MAX_ITEMS:
        problems.add(f"has {len(value)} entries; use at most {MAX_ITEMS}", path=path)
        return ()
    pairs = []
    for key, item in value.items():
        where = _join(path, key)
        checked_key = _convert(problems, where, key, key_rule)
        checked_value = _convert(problems, where, item, _value_text)
        if checked_key is not None and checked_value is not None:
            pairs.append((checked_key, checked_value))
    return tuple(sorted(pairs))


def _doc_model(problems: _Problems, value: object) -> ModelRef | None:
    if value is None:
        return None
    data = _doc_object(problems, "model", value, ("id", "required"), required=("id",))
    if data is None or data.get("id") is None:
        return None
    ident = _convert(problems, "model.id", data["id"], _model_id)
    required = _take(problems, "model.required", data.get("required"), _want_bool)
    return None if ident is None else ModelRef(ident, required=bool(required))


def _doc_entrypoint(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return _argv(_shell_words(value))
    if isinstance(value, list | tuple):
        return _argv(list(value))
    raise _Invalid(f"must be a string or a list of strings, not {_kind(value)}")


def _doc_expose(problems: _Problems, value: object) -> tuple[int, ...]:
    ports: list[int] = []

    def build(problems: _Problems, path: str, item: object) -> int | None:
        port = _convert(problems, path, item, lambda v: _want_int(v, _PORTS))
        if port is not None and port in ports:
            problems.add(f"{port} is listed twice; give each port once", path=path)
            return None
        if port is not None:
            ports.append(port)
        return port

    _doc_items(problems, "expose", value, build)
    return tuple(ports)


def _doc_gpu(problems: _Problems, path: str, value: object) -> Gpu | None:
    """A GPU as {model, count} or as the text form's MODEL[:count]."""
    if value is None:
        return None
    if isinstance(value, str):
        return _convert(problems, path, value, lambda text: _text_gpu(_want_str(text)))
    data = _doc_object(problems, path, value, ("model", "count"), required=("model",))
    if data is None or data.get("model") is None:
        return None
    model = _convert(problems, f"{path}.model", data["model"], _gpu_model)
    count = _take(problems, f"{path}.count", data.get("count"), _want_int_gpu)
    if model is None or (count is None and data.get("count") is not None):
        return None
    return Gpu(model, 1 if count is None else count)


def _doc_resources(problems: _Problems, value: object) -> Resources:
    if value is None:
        return Resources()
    data = _doc_object(problems, "resources", value, ("vcpus", "memory_mb", "disk_gb", "gpu"))
    if data is None:
        return Resources()
    return Resources(
        vcpus=_take(problems, "resources.vcpus", data.get("vcpus"), lambda v: _want_int(v, _VCPUS)),
        memory_mb=_take(
            problems,
            "resources.memory_mb",
            data.get("memory_mb"),
            lambda v: _want_int(v, _MEMORY_MB),
        ),
        disk_gb=_take(
            problems, "resources.disk_gb", data.get("disk_gb"), lambda v: _want_int(v, _DISK_GB)
        ),
        gpu=_doc_gpu(problems, "resources.gpu", data.get("gpu")),
    )


def _doc_network(problems: _Problems, value: object) -> Network:
    if value is None:
        return Network()
    data = _doc_object(problems, "network", value, _NETWORK_FIELDS)
    if data is None:
        return Network()

    def report(name: str, message: str) -> None:
        problems.add(message, path=f"network.{name}")

    return _network_from_values(data, report) or Network()


def _doc_user(problems: _Problems, path: str, value: object) -> User | None:
    data = _doc_object(problems, path, value, _USER_FIELDS)
    if data is None:
        return None

    def report(name: str, message: str) -> None:
        problems.add(message, path=f"{path}.{name}")

    return _user_from_values(data, report)


def _doc_copy(problems: _Problems, path: str, value: object) -> CopyStep | None:
    data = _doc_object(problems, path, value, ("from", "to"), required=("from", "to"))
    if data is None or data.get("from") is None or data.get("to") is None:
        return None
    source = _convert(problems, f"{path}.from", data["from"], _context_path)
    destination = _convert(problems, f"{path}.to", data["to"], _image_path)
    if source is None or destination is None:
        return None
    return CopyStep(source, destination)


def _doc_env(problems: _Problems, path: str, value: object) -> EnvStep | None:
    data = _doc_object(problems, path, value, ("key", "value", "scope"), required=("key",))
    if data is None or data.get("key") is None:
        return None
    key = _convert(problems, f"{path}.key", data["key"], _env_key)
    raw_value = data.get("value")
    text = _convert(problems, f"{path}.value", "" if raw_value is None else raw_value, _value_text)
    scope = _take(problems, f"{path}.scope", data.get("scope"), _scope) or SYSTEM_SCOPE
    if key is None or text is None:
        return None
    return EnvStep(key, text, scope)


def _doc_install(problems: _Problems, path: str, value: object) -> InstallStep | None:
    if isinstance(value, list | tuple) and not value:
        problems.add("needs at least one package", path=path)
        return None
    packages = _doc_list(problems, path, value, _package)
    return InstallStep(packages) if packages else None


def _doc_run(problems: _Problems, path: str, value: object) -> RunStep | None:
    command = _convert(problems, path, value, _one_line)
    return None if command is None else RunStep(command)


_DOC_STEP_BUILDERS: Final[Mapping[str, Callable[[_Problems, str, object], Step | None]]] = {
    "run": _doc_run,
    "copy": _doc_copy,
    "install": _doc_install,
    "env": _doc_env,
    "user": lambda problems, path, value: _user_step(_doc_user(problems, path, value)),
}


def _user_step(user: User | None) -> UserStep | None:
    return None if user is None else UserStep(user)


def _doc_step(problems: _Problems, path: str, value: object) -> Step | None:
    data = _doc_object(problems, path, value, _STEP_KEYS)
    if data is None:
        return None
    if len(data) != 1:
        problems.add(f"must have exactly one of {', '.join(_STEP_KEYS)}", path=path)
        return None
    [(kind, body)] = data.items()
    return _DOC_STEP_BUILDERS[kind](problems, f"{path}.{kind}", body)


def _legacy_steps(problems: _Problems, document: Mapping[str, object]) -> tuple[Step, ...]:
    """The users/install/copy/env/run keys as steps, in that fixed order."""
    steps: list[Step] = []
    steps.extend(
        UserStep(user) for user in _doc_items(problems, "users", document.get("users"), _doc_user)
    )
    packages = _doc_list(problems, "install", document.get("install"), _package)
    if packages:
        steps.append(InstallStep(packages))
    steps.extend(_doc_items(problems, "copy", document.get("copy"), _doc_copy))
    env = _doc_pairs(problems, "env", document.get("env"), _env_key)
    steps.extend(EnvStep(key, value) for key, value in env)
    steps.extend(RunStep(c) for c in _doc_list(problems, "run", document.get("run"), _one_line))
    return tuple(steps)


def _doc_steps(problems: _Problems, document: Mapping[str, object]) -> tuple[Step, ...]:
    if document.get("steps") is None:
        return _legacy_steps(problems, document)
    legacy = [key for key in _LEGACY_STEP_KEYS if document.get(key) is not None]
    if legacy:
        problems.add(f"use either steps or {', '.join(legacy)}, not both", path="steps")
    return tuple(_doc_items(problems, "steps", document["steps"], _doc_step))


def parse_formfile_document(data: object) -> Formfile:
    """Build a Formfile from the document form (already decoded JSON or YAML)."""
    problems = _Problems()
    if not isinstance(data, Mapping):
        message = f"the Formfile must be an object of keys and values, not {_kind(data)}"
        raise FormfileError([FormfileProblem(message)])
    document = _doc_object(problems, "", data, DOCUMENT_KEYS, required=("name",)) or {}
    formfile = Formfile(
        name=_take(problems, "name", document.get("name"), _one_line) or "",
        description=_take(problems, "description", document.get("description"), _one_line),
        base_image=_take(problems, "from", document.get("from"), _image) or DEFAULT_BASE_IMAGE,
        model=_doc_model(problems, document.get("model")),
        workdir=_take(problems, "workdir", document.get("workdir"), _workdir_path)
        or DEFAULT_WORKDIR,
        includes=_doc_list(problems, "include", document.get("include"), _context_path),
        steps=_doc_steps(problems, document),
        entrypoint=_take(problems, "entrypoint", document.get("entrypoint"), _doc_entrypoint) or (),
        expose=_doc_expose(problems, document.get("expose")),
        resources=_doc_resources(problems, document.get("resources")),
        network=_doc_network(problems, document.get("network")),
        metadata=_doc_pairs(problems, "metadata", document.get("metadata"), _metadata_key),
    )
    problems.raise_if_any()
    for message in _model_problems(formfile):
        problems.add(message)
    problems.raise_if_any()
    return formfile


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
    return {"user": _field_document(_changed_fields(step.user))}


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
    if _legacy_steps(_Problems(), legacy) == steps:
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


def _render_document(formfile: Formfile) -> dict[str, object]:
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
    network = _changed_fields(formfile.network)
    if network:
        document["network"] = _field_document(network)
    if formfile.metadata:
        document["metadata"] = dict(formfile.metadata)
    return document


# -- choosing the form -------------------------------------------------------------------------


def detect_formfile_form(text: str) -> FormfileForm:
    """Which form `text` is in (see the module docs for the rule)."""
    body = text.lstrip("\ufeff \t\r\n")
    if body.startswith(("{", "[")):
        return "json"
    for raw in body.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#") or line == "---":
            continue
        key, sep, rest = line.partition(":")
        is_yaml = sep and key in DOCUMENT_KEYS and (not rest or rest[0] in " \t")
        return "yaml" if is_yaml else "text"
    return "text"


def _load_document(text: str, form: FormfileForm) -> object:
    """Decode the document form with bounded work (see `workloads.documents`)."""
    try:
        return load_json(text) if form == "json" else load_yaml(text)
    except DocumentError as exc:
        raise FormfileError(
            FormfileProblem(p.message, line=p.line, path=p.path) for p in exc.problems
        ) from None


def parse_formfile(text: str) -> Formfile:
    """Parse a Formfile in any form (`detect_formfile_form`); raise FormfileError."""
    _raise_for_text_limits(text)
    text = text.removeprefix("\ufeff")
    form = detect_formfile_form(text)
    if form == "text":
        return parse_formfile_text(text)
    return parse_formfile_document(_load_document(text, form))
