"""Value rules shared by both forms: each converter checks one kind of value.

A converter takes a value as written (a text form's word, a document's JSON value) and returns
it checked, or raises `Invalid` with messages that read well after a keyword or a `path: `.
Strings are stripped of surrounding whitespace where the text form would strip them and may
not hold line breaks or control characters. Copy sources and includes are relative paths
with no `..` segment; copy destinations have no `..` segment. ENV and METADATA values in a
document may be whole numbers (YAML's `PORT: 8080`); whole floats count as whole numbers
(protobuf Struct numbers are doubles). Error messages show values through `previews.preview`,
which stops writing at the message's length.
"""

from __future__ import annotations

import json
import re
import shlex
import unicodedata
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import Final, TypeVar

from formation_mcp.previews import preview
from formation_mcp.workloads.formfile.limits import MAX_ITEMS, MAX_STRING_BYTES
from formation_mcp.workloads.formfile.parts import (
    DEFAULT_USER,
    GPU_MODELS,
    SYSTEM_SCOPE,
    EnvScope,
    Gpu,
    Network,
    User,
)
from formation_mcp.workloads.formfile.problems import Invalid, Report

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Range:
    low: int
    high: int
    unit: str = ""

    def __str__(self) -> str:
        return f"{self.low} to {self.high}{self.unit}"


VCPUS: Final = _Range(1, 128)
MEMORY_MB: Final = _Range(512, 256_000, " (MB)")
DISK_GB: Final = _Range(5, 65_535, " (GB)")
_GPU_COUNT: Final = _Range(1, 8)
PORTS: Final = _Range(1, 65_535)

_PACKAGE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.:=~/_-]*")
_ENV_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_USERNAME: Final = re.compile(r"[a-z_][a-z0-9_-]*")
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})
_TRUE_WORDS: Final = frozenset({"true", "yes", "1", "on"})
_FALSE_WORDS: Final = frozenset({"false", "no", "0", "off"})


def kind_of(value: object) -> str:
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


def clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show(value: object) -> str:
    """A value as it would be written in JSON, shortened for messages (at a cost bounded by
    the message, however large the value: see `previews`)."""
    return preview(value)


def within(subject: str, convert: Callable[[object], _T], value: object) -> _T:
    """`convert(value)`, with `subject` put before any complaint."""
    try:
        return convert(value)
    except Invalid as exc:
        raise Invalid(*(f"{subject} {message}" for message in exc.messages)) from None


def _check_count(items: Sized) -> None:
    if len(items) > MAX_ITEMS:
        raise Invalid(f"has {len(items)} entries; use at most {MAX_ITEMS}")


def _check_size(text: str) -> str:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_STRING_BYTES:
        raise Invalid(f"is too long ({size} bytes); use at most {MAX_STRING_BYTES} bytes")
    return text


def want_str(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be a string, not {kind_of(value)}")
    return value


def one_line(value: object, *, allow_empty: bool = False) -> str:
    """A string that fits on one text line: stripped, no line breaks or control characters."""
    text = _check_size(want_str(value).strip())
    if any(ch != "\t" and unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in text):
        raise Invalid("contains a line break or control character; keep it on one line")
    if not text and not allow_empty:
        raise Invalid("is empty; give a value")
    return text


def _word(value: object, what: str) -> str:
    text = one_line(value)
    if any(ch.isspace() for ch in text):
        raise Invalid(f"{show(text)} has whitespace in it; a {what} is a single word")
    return text


def value_text(value: object) -> str:
    """An ENV or METADATA value: may be empty; a whole number is taken as its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return one_line(value, allow_empty=True)


def image(value: object) -> str:
    return _word(value, "base image name")


def context_path(value: object) -> str:
    path = _word(value, "path")
    if path.startswith("/"):
        raise Invalid(f"{show(path)} is absolute; use a path relative to the build context")
    if ".." in path.split("/"):
        raise Invalid(f"{show(path)} has a .. segment; stay inside the build context")
    return path


def image_path(value: object) -> str:
    path = _word(value, "path")
    if ".." in path.split("/"):
        raise Invalid(f"{show(path)} has a .. segment; name the destination without ..")
    return path


def workdir_path(value: object) -> str:
    path = one_line(value)
    if not path.startswith("/"):
        raise Invalid(f"{show(path)} is not an absolute path; start it with /")
    if {".", ".."} & set(path.split("/")):
        raise Invalid(f"{show(path)} has a . or .. segment; write the path without them")
    return path


def package(value: object) -> str:
    name = _word(value, "package name")
    if not _PACKAGE.fullmatch(name):
        raise Invalid(
            f"{show(name)} is not an apt package name; use letters, digits and + . : = ~ / _ -"
            ", starting with a letter or digit"
        )
    return name


def package_list(values: Sequence[object]) -> tuple[str, ...]:
    if not values:
        raise Invalid("needs at least one package")
    _check_count(values)
    return tuple(package(value) for value in values)


def env_key(value: object) -> str:
    key = one_line(value)
    if not _ENV_KEY.fullmatch(key):
        raise Invalid(
            f"key {show(key)} is not a valid name; use letters, digits and _"
            ", not starting with a digit"
        )
    return key


def _username(value: object) -> str:
    name = one_line(value)
    if len(name) > 32:
        raise Invalid(f"{show(name)} is longer than 32 characters")
    if not _USERNAME.fullmatch(name):
        raise Invalid(
            f"{show(name)} is not a valid username; use lowercase letters, digits, _ and -"
            ", starting with a letter or _"
        )
    return name


def env_scope(value: object) -> EnvScope:
    text = _word(value, "scope")
    kind, sep, name = text.partition(":")
    if text == "system":
        return SYSTEM_SCOPE
    if sep and kind == "user":
        return EnvScope("user", within("user", _username, name))
    if sep and kind == "service":
        return EnvScope("service", within("service", _service_name, name))
    raise Invalid(f"{show(text)} is not valid; use system, user:<name> or service:<name>")


def _service_name(value: object) -> str:
    return _word(value, "service name")


def model_id(value: object) -> str:
    ident = _word(value, "model id")
    if ":" in ident:
        raise Invalid(f"{show(ident)} has a ':' in it; a model id can't")
    return ident


def gpu_model(value: object) -> str:
    model = _word(value, "GPU model")
    if model not in GPU_MODELS:
        raise Invalid(
            f"{show(model)} is not a supported GPU model; use one of {', '.join(GPU_MODELS)}"
        )
    return model


def parse_gpu(arg: str) -> Gpu:
    model, sep, count = arg.partition(":")
    if not sep:
        return Gpu(gpu_model(model.strip()))
    return Gpu(gpu_model(model.strip()), within("count", gpu_count, count.strip()))


def gpu_count(value: object) -> int:
    return want_int(value, _GPU_COUNT)


def metadata_key(value: object) -> str:
    key = _word(value, "metadata key")
    if "=" in key:
        raise Invalid(f"key {show(key)} has an = in it; a metadata key can't")
    return key


def _list_word(value: object, what: str) -> str:
    """A word in a comma-separated list (a group, a network): no spaces, no commas."""
    text = _word(value, what)
    if "," in text:
        raise Invalid(f"{show(text)} has a comma in it; a {what} can't")
    return text


def _ssh_key(value: object) -> str:
    key = one_line(value)
    if "," in key:
        raise Invalid(f"{show(key)} has a comma in it; an ssh key can't")
    return key


def _passwd(value: object) -> str:
    text = want_str(value)
    if not text:
        raise Invalid("is empty; give a password or leave it out")
    _check_size(text)
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in text):
        raise Invalid("contains a line break or control character")
    return text


def _shell(value: object) -> str:
    path = one_line(value)
    if not path.startswith("/"):
        raise Invalid(f"{show(path)} is not an absolute path; start it with /")
    return path


def want_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise Invalid(f"{show(value)} is not a boolean; use true or false (or yes/no, 1/0, on/off)")


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


def want_int(value: object, allowed: _Range) -> int:
    number = _as_int(value)
    if number is None:
        raise Invalid(f"{show(value)} is not a whole number; use {allowed}")
    if not allowed.low <= number <= allowed.high:
        shown = clip(value) if isinstance(value, str) else str(number)
        raise Invalid(f"{shown} is out of range; use {allowed}")
    return number


def _comma_list(value: object, item: Callable[[object], str]) -> tuple[str, ...]:
    """A list of strings, or one comma-separated string (the text form's way)."""
    if isinstance(value, str):
        raw: list[object] = list(value.split(","))
    elif isinstance(value, list | tuple):
        raw = list(value)
    else:
        raise Invalid(f"must be a list or a comma-separated string, not {kind_of(value)}")
    _check_count(raw)
    return tuple(item(entry) for entry in raw)


def _ssh_keys(value: object) -> tuple[str, ...]:
    return _comma_list(value, _ssh_key)


def _groups(value: object) -> tuple[str, ...]:
    return _comma_list(value, lambda entry: _list_word(entry, "group name"))


def _networks(value: object) -> tuple[str, ...]:
    return _comma_list(value, lambda entry: _list_word(entry, "network name"))


def entrypoint_argv(values: Sequence[object]) -> tuple[str, ...]:
    """An entrypoint: program and arguments, passed to exec as they are."""
    if not values:
        raise Invalid("is empty; give the program to run")
    _check_count(values)
    argv = tuple(_check_size(want_str(value)) for value in values)
    if any("\x00" in arg for arg in argv):
        raise Invalid("has a NUL character in it")
    if not argv[0].strip():
        raise Invalid("starts with an empty word; the first word is the program to run")
    return argv


def shell_words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise Invalid(f"{show(text)} can't be split into words ({str(exc).lower()})") from None


def json_array(text: str) -> list[object]:
    try:
        data: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Invalid(f"is not a valid JSON array ({exc.msg})") from None
    except RecursionError:
        raise Invalid("is not a valid JSON array (nested too deeply)") from None
    except ValueError:  # a number over Python's 4,300-digit conversion limit
        raise Invalid("is not a valid JSON array (a number in it is too long)") from None
    if not isinstance(data, list):
        raise Invalid(f"must be a JSON array of strings, not {kind_of(data)}")
    return data


class _FieldReader:
    """Reads optional named fields with converters, reporting each bad one."""

    def __init__(self, values: Mapping[str, object], report: Report) -> None:
        self.values = values
        self.report = report
        self.ok = True

    def get(self, name: str, convert: Callable[[object], _T], default: _T) -> _T:
        value = self.values.get(name)
        if value is None:
            return default
        try:
            return convert(value)
        except Invalid as exc:
            self.ok = False
            for message in exc.messages:
                self.report(name, message)
            return default


def user_from_values(values: Mapping[str, object], report: Report) -> User | None:
    """A USER's fields, as text strings or as document values, checked the same way."""
    reader = _FieldReader(values, report)
    if values.get("username") is None:
        reader.ok = False
        report("username", "is required")
    d = DEFAULT_USER
    user = User(
        username=reader.get("username", _username, d.username),
        passwd=reader.get("passwd", _passwd, d.passwd),
        ssh_authorized_keys=reader.get("ssh_authorized_keys", _ssh_keys, d.ssh_authorized_keys),
        lock_passwd=reader.get("lock_passwd", want_bool, d.lock_passwd),
        sudo=reader.get("sudo", want_bool, d.sudo),
        shell=reader.get("shell", _shell, d.shell),
        ssh_pwauth=reader.get("ssh_pwauth", want_bool, d.ssh_pwauth),
        disable_root=reader.get("disable_root", want_bool, d.disable_root),
        chpasswd_expire=reader.get("chpasswd_expire", want_bool, d.chpasswd_expire),
        groups=reader.get("groups", _groups, d.groups),
    )
    return user if reader.ok else None


def network_from_values(values: Mapping[str, object], report: Report) -> Network | None:
    reader = _FieldReader(values, report)
    network = Network(
        join_formnet=reader.get("join_formnet", want_bool, True),
        external_networks=reader.get("external_networks", _networks, ()),
    )
    return network if reader.ok else None
