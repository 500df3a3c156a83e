"""Reading a Formfile in any form: which form it is in, then that form's parser.

`parse_formfile` picks the form (`detect_formfile_form`): text whose first non-blank
character is `{` or `[` is JSON; text whose first line that is not blank, a `#` comment or
`---` reads `key:` (followed by whitespace or the end of the line) with `key` in
`DOCUMENT_KEYS` is YAML; anything else is the text form. The document form is loaded with
bounded work (`workloads.documents`: depth, values and YAML aliases are limited before
anything is built). YAML needs PyYAML, imported when first needed.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

from formation_mcp.workloads.documents import DocumentError, load_json, load_yaml
from formation_mcp.workloads.formfile.document_form import DOCUMENT_KEYS, parse_formfile_document
from formation_mcp.workloads.formfile.model import Formfile
from formation_mcp.workloads.formfile.problems import FormfileError, FormfileProblem
from formation_mcp.workloads.formfile.text_form import parse_formfile_text, raise_for_text_limits

FormfileForm: TypeAlias = Literal["json", "yaml", "text"]


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
    raise_for_text_limits(text)
    text = text.removeprefix("\ufeff")
    form = detect_formfile_form(text)
    if form == "text":
        return parse_formfile_text(text)
    return parse_formfile_document(_load_document(text, form))
