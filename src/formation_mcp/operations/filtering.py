"""Parser for the AIP-160 filter subset accepted by ``ListOperations``.

The filter text is tokenized first and then parsed into a flat tuple of
:class:`Comparison` values that are implicitly AND-ed together. Nothing here
knows about SQL; translating comparisons into a query is the caller's job.

Grammar (whitespace between tokens is optional unless two words would merge)::

    filter     := <empty> | expression
    expression := term ( "AND" term )*
    term       := FIELD OP VALUE
    FIELD      := "state" | "tool" | "done" | "create_time"
                | "metadata.state" | "metadata.tool" | "metadata.create_time"
    OP         := "=" | "!=" | "<" | ">" | "<=" | ">="
    VALUE      := BARE | QUOTED
    BARE       := one or more of [A-Za-z0-9_.:+*-]
    QUOTED     := '"' ( any character except '"' and '\\' | '\\"' | '\\\\' )* '"'

``AND`` is a case-sensitive keyword. An empty or whitespace-only filter means
"no filter" and parses to an empty tuple. The ``metadata.`` aliases normalize
to the bare field names.

Per-field rules:

* ``state``: ``=`` or ``!=``; the value is one of PENDING, RUNNING, SUCCEEDED,
  FAILED, CANCELLED or AWAITING_APPROVAL (case-sensitive), bare or quoted.
* ``tool``: ``=`` or ``!=``; a bare value uses only ``[A-Za-z0-9_.-]``, anything
  else must be quoted. A trailing ``*`` means prefix match and yields
  ``Comparison("tool", "=", prefix_without_star, prefix=True)``; it is only
  allowed with ``=`` and nowhere but at the end.
* ``done``: ``=`` or ``!=``; the value is the bare word ``true`` or ``false``.
* ``create_time``: all six operators; the value is an RFC 3339 timestamp with a
  timezone (``Z`` or ``+HH:MM``/``-HH:MM``), bare or quoted. It is converted to
  an aware UTC :class:`~datetime.datetime` (fractions beyond microseconds are
  truncated).

Not supported, each with a dedicated error: ``OR``, ``NOT``, ``-`` negation,
parentheses, the ``:`` has-operator and function calls. A filter may be at most
:data:`MAX_FILTER_LENGTH` characters long and contain at most :data:`MAX_TERMS`
comparisons. Every problem raises :class:`FilterError` with the 0-based
character offset where it starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Final

__all__ = [
    "MAX_FILTER_LENGTH",
    "MAX_TERMS",
    "STATE_NAMES",
    "SUPPORTED_FIELDS",
    "SUPPORTED_OPERATORS",
    "Comparison",
    "FilterError",
    "parse_filter",
]

MAX_FILTER_LENGTH: Final = 1024
MAX_TERMS: Final = 16

SUPPORTED_FIELDS: Final = ("state", "tool", "done", "create_time")
SUPPORTED_OPERATORS: Final = ("=", "!=", "<", ">", "<=", ">=")
STATE_NAMES: Final = (
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "AWAITING_APPROVAL",
)

_FIELD_ALIASES: Final = {
    "metadata.state": "state",
    "metadata.tool": "tool",
    "metadata.create_time": "create_time",
}
_EQUALITY_OPERATORS: Final = frozenset({"=", "!="})
_ALLOWED_OPERATORS: Final = {
    "state": _EQUALITY_OPERATORS,
    "tool": _EQUALITY_OPERATORS,
    "done": _EQUALITY_OPERATORS,
    "create_time": frozenset(SUPPORTED_OPERATORS),
}

_FIELD_LIST: Final = ", ".join(SUPPORTED_FIELDS)
_OPERATOR_LIST: Final = ", ".join(SUPPORTED_OPERATORS)
_SUPPORTED_SYNTAX: Final = (
    f"supported: comparisons FIELD OP VALUE joined by AND, "
    f"fields {_FIELD_LIST}, operators {_OPERATOR_LIST}"
)

_ALNUM: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_WORD_CHARS: Final = frozenset(_ALNUM + "_.-:+*")
_BARE_TOOL_CHARS: Final = frozenset(_ALNUM + "_.-*")
# Longest first, so "<=" wins over "<".
_OPERATOR_TOKENS: Final = ("!=", "<=", ">=", "=", "<", ">")

_TIMESTAMP_RE: Final = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,9}))?"
    r"(?P<zone>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_TIMESTAMP_EXAMPLE: Final = "2026-11-23T10:00:00Z or 2026-11-23T10:00:00.5+02:00"


class FilterError(ValueError):
    """Raised for any invalid filter.

    ``position`` is the 0-based character offset where the problem starts, or
    ``None`` when no single offset applies.
    """

    message: str
    position: int | None

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True, slots=True)
class Comparison:
    """One ``FIELD OP VALUE`` term; a parsed filter is the AND of its comparisons."""

    field: str
    op: str
    value: str | bool | datetime
    prefix: bool = False


def parse_filter(text: str) -> tuple[Comparison, ...]:
    """Parse ``text`` into comparisons; an empty filter yields ``()``.

    Raises :class:`FilterError` describing the first problem found.
    """
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(
            f"filter is too long: {len(text)} characters, the maximum is {MAX_FILTER_LENGTH} "
            f"(the excess starts at position {MAX_FILTER_LENGTH})",
            MAX_FILTER_LENGTH,
        )
    return _Parser(_tokenize(text)).parse()


# --------------------------------------------------------------------------- tokenizer


class _Kind(Enum):
    WORD = "word"
    STRING = "string"
    OPERATOR = "operator"
    LPAREN = "("
    RPAREN = ")"
    OTHER = "character"
    END = "end"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    text: str  # exactly as written in the filter (quotes included for strings)
    pos: int
    value: str  # decoded string contents; same as ``text`` for other kinds


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        token = _next_token(text, index)
        tokens.append(token)
        index += len(token.text)
    tokens.append(_Token(_Kind.END, "", len(text), ""))
    return tokens


def _next_token(text: str, start: int) -> _Token:
    char = text[start]
    if char == '"':
        return _read_string(text, start)
    if char in _WORD_CHARS:
        return _read_word(text, start)
    for operator in _OPERATOR_TOKENS:
        if text.startswith(operator, start):
            return _Token(_Kind.OPERATOR, operator, start, operator)
    kind = {"(": _Kind.LPAREN, ")": _Kind.RPAREN}.get(char, _Kind.OTHER)
    return _Token(kind, char, start, char)


def _read_word(text: str, start: int) -> _Token:
    end = start
    while end < len(text) and text[end] in _WORD_CHARS:
        end += 1
    word = text[start:end]
    return _Token(_Kind.WORD, word, start, word)


def _read_string(text: str, start: int) -> _Token:
    chars: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == '"':
            return _Token(_Kind.STRING, text[start : index + 1], start, "".join(chars))
        if char == "\\":
            chars.append(_read_escape(text, index, start))
            index += 2
        else:
            chars.append(char)
            index += 1
    raise _unterminated_string(start)


def _read_escape(text: str, index: int, start: int) -> str:
    if index + 1 >= len(text):
        raise _unterminated_string(start)
    escaped = text[index + 1]
    if escaped in '"\\':
        return escaped
    raise FilterError(
        f'invalid escape "\\{escaped}" at position {index} in quoted string; '
        'only \\" and \\\\ are supported',
        index,
    )


def _unterminated_string(start: int) -> FilterError:
    return FilterError(
        f"unterminated quoted string starting at position {start}; "
        'close it with a double quote (")',
        start,
    )


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._index = 0

    def parse(self) -> tuple[Comparison, ...]:
        if self._peek().kind is _Kind.END:
            return ()
        comparisons = [self._term(after=None)]
        while self._peek().kind is not _Kind.END:
            conjunction = self._conjunction()
            if len(comparisons) == MAX_TERMS:
                raise _too_many_terms(self._peek())
            comparisons.append(self._term(after=conjunction))
        return tuple(comparisons)

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _advance(self) -> _Token:
        token = self._peek()
        if token.kind is not _Kind.END:
            self._index += 1
        return token

    def _conjunction(self) -> _Token:
        token = self._advance()
        if _is_word(token, "AND"):
            return token
        raise _unexpected_after_term(token)

    def _term(self, after: _Token | None) -> Comparison:
        field_token = self._advance()
        field = self._field_name(field_token, after)
        operator = self._operator(field_token)
        _check_operator_allowed(field, field_token, operator)
        value = self._value(operator)
        return _build_comparison(field, operator, value)

    def _field_name(self, token: _Token, after: _Token | None) -> str:
        if token.kind is _Kind.WORD:
            self._reject_unsupported_word(token)
            return _lookup_field(token)
        if token.kind is _Kind.END and after is not None:
            raise FilterError(
                f'expected a comparison after "AND" at position {token.pos}', token.pos
            )
        raise _misplaced_token(token, "a field name", f"supported fields: {_FIELD_LIST}")

    def _reject_unsupported_word(self, token: _Token) -> None:
        if token.text in ("OR", "NOT"):
            raise _unsupported_keyword(token)
        if token.text.startswith("-"):
            raise _unsupported(
                'negation "-"', token.pos, "use != or the opposite comparison instead"
            )
        if self._peek().kind is _Kind.LPAREN:
            raise _unsupported_function(token)
        colon = token.text.find(":")
        if colon >= 0:
            raise _unsupported_has(token.pos + colon)

    def _operator(self, field_token: _Token) -> _Token:
        token = self._advance()
        if token.kind is _Kind.OPERATOR:
            return token
        if token.kind is _Kind.WORD and token.text.startswith(":"):
            raise _unsupported_has(token.pos)
        raise FilterError(
            f'expected an operator after field "{field_token.text}" at position {token.pos}, '
            f"got {_describe(token)}; supported operators: {_OPERATOR_LIST}",
            token.pos,
        )

    def _value(self, operator: _Token) -> _Token:
        token = self._advance()
        if token.kind is _Kind.STRING:
            return token
        if token.kind is _Kind.WORD and token.text != "AND":
            if token.text in ("OR", "NOT"):
                raise _unsupported_keyword(token)
            if self._peek().kind is _Kind.LPAREN:
                raise _unsupported_function(token)
            return token
        raise _misplaced_token(token, f'a value after "{operator.text}"', "")


# --------------------------------------------------------------------------- fields


def _lookup_field(token: _Token) -> str:
    if token.text in SUPPORTED_FIELDS:
        return token.text
    alias = _FIELD_ALIASES.get(token.text)
    if alias is not None:
        return alias
    if token.text == "AND":
        raise _misplaced_token(token, "a field name", f"supported fields: {_FIELD_LIST}")
    raise FilterError(
        f'unknown field "{token.text}" at position {token.pos}; supported fields: {_FIELD_LIST}',
        token.pos,
    )


def _check_operator_allowed(field: str, field_token: _Token, operator: _Token) -> None:
    if operator.text in _ALLOWED_OPERATORS[field]:
        return
    raise FilterError(
        f'operator "{operator.text}" is not allowed for field "{field_token.text}" '
        f"at position {operator.pos} (use = or !=)",
        operator.pos,
    )


def _build_comparison(field: str, operator: _Token, value: _Token) -> Comparison:
    if field == "state":
        return Comparison(field, operator.text, _state_value(value))
    if field == "done":
        return Comparison(field, operator.text, _bool_value(value))
    if field == "create_time":
        return Comparison(field, operator.text, _timestamp_value(value))
    return _tool_comparison(operator, value)


def _state_value(token: _Token) -> str:
    if token.value in STATE_NAMES:
        return token.value
    hint = " (state names are case-sensitive)" if token.value.upper() in STATE_NAMES else ""
    raise FilterError(
        f'invalid value {_show(token)} for field "state" at position {token.pos}; '
        f"expected one of: {', '.join(STATE_NAMES)}{hint}",
        token.pos,
    )


def _bool_value(token: _Token) -> bool:
    if token.kind is _Kind.WORD and token.text in ("true", "false"):
        return token.text == "true"
    raise FilterError(
        f'invalid value {_show(token)} for field "done" at position {token.pos}; '
        "expected true or false (lowercase, unquoted)",
        token.pos,
    )


def _tool_comparison(operator: _Token, token: _Token) -> Comparison:
    if token.kind is _Kind.WORD:
        _check_bare_tool(token)
    star = token.text.find("*")
    if star < 0:
        return Comparison("tool", operator.text, token.value)
    position = token.pos + star
    if token.value.index("*") != len(token.value) - 1:
        raise FilterError(
            f'wildcard "*" at position {position} must be the last character of the tool '
            'value (prefix match, e.g. tool="deploy_*")',
            position,
        )
    if operator.text != "=":
        raise FilterError(
            f'wildcard "*" at position {position} is only allowed with "=" (prefix match), '
            f'not with "{operator.text}"',
            position,
        )
    return Comparison("tool", "=", token.value[:-1], prefix=True)


def _check_bare_tool(token: _Token) -> None:
    for offset, char in enumerate(token.text):
        if char not in _BARE_TOOL_CHARS:
            position = token.pos + offset
            raise FilterError(
                f'invalid character "{char}" at position {position} in unquoted tool value; '
                'use only letters, digits, "_", ".", "-" or double-quote the value',
                position,
            )


# --------------------------------------------------------------------------- timestamps


def _timestamp_value(token: _Token) -> datetime:
    match = _TIMESTAMP_RE.fullmatch(token.value)
    if match is None:
        raise _invalid_timestamp(token, f"expected RFC 3339 such as {_TIMESTAMP_EXAMPLE}")
    if match["zone"] is None:
        raise FilterError(
            f"timestamp {_show(token)} at position {token.pos} has no timezone; "
            'append "Z" or an offset such as "+02:00"',
            token.pos,
        )
    try:
        return _aware_datetime(match).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise _invalid_timestamp(token, str(exc)) from None


def _aware_datetime(match: re.Match[str]) -> datetime:
    microseconds = (match["fraction"] or "").ljust(6, "0")[:6]
    return datetime(
        int(match["year"]),
        int(match["month"]),
        int(match["day"]),
        int(match["hour"]),
        int(match["minute"]),
        int(match["second"]),
        int(microseconds),
        tzinfo=_zone(match["zone"]),
    )


def _zone(text: str) -> timezone:
    if text in ("Z", "z"):
        return UTC
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 23 or minutes > 59:
        raise ValueError(f"timezone offset {text} is out of range (-23:59 to +23:59)")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def _invalid_timestamp(token: _Token, detail: str) -> FilterError:
    return FilterError(
        f'invalid timestamp {_show(token)} for field "create_time" at position {token.pos}; '
        f"{detail}",
        token.pos,
    )


# --------------------------------------------------------------------------- errors


def _is_word(token: _Token, word: str) -> bool:
    return token.kind is _Kind.WORD and token.text == word


def _show(token: _Token) -> str:
    return token.text if token.kind is _Kind.STRING else f'"{token.text}"'


def _describe(token: _Token) -> str:
    if token.kind is _Kind.END:
        return "the end of the filter"
    if token.kind is _Kind.STRING:
        return f"string {token.text}"
    if token.kind is _Kind.OPERATOR:
        return f'operator "{token.text}"'
    return f'"{token.text}"'


def _unsupported(construct: str, position: int, hint: str) -> FilterError:
    return FilterError(
        f"{construct} at position {position} is not supported; {hint} ({_SUPPORTED_SYNTAX})",
        position,
    )


def _unsupported_keyword(token: _Token) -> FilterError:
    if token.text == "OR":
        return _unsupported('"OR"', token.pos, "combine comparisons with AND")
    return _unsupported('"NOT"', token.pos, "use != or the opposite comparison instead")


def _unsupported_has(position: int) -> FilterError:
    return _unsupported('has operator ":"', position, 'compare with "=" instead')


def _unsupported_function(token: _Token) -> FilterError:
    return _unsupported(
        f'function call "{token.text}(...)"', token.pos, "compare a field with a literal value"
    )


def _unsupported_parenthesis(token: _Token) -> FilterError:
    return _unsupported(
        f'parenthesis "{token.text}"', token.pos, "write comparisons joined by AND without grouping"
    )


def _unexpected_character(token: _Token) -> FilterError:
    hint = "; use double quotes for strings" if token.text == "'" else ""
    return FilterError(
        f'unexpected character "{token.text}" at position {token.pos}{hint}', token.pos
    )


def _misplaced_token(token: _Token, expected: str, hint: str) -> FilterError:
    if token.kind in (_Kind.LPAREN, _Kind.RPAREN):
        return _unsupported_parenthesis(token)
    if token.kind is _Kind.OTHER:
        return _unexpected_character(token)
    got = "" if token.kind is _Kind.END else f", got {_describe(token)}"
    suffix = f"; {hint}" if hint else ""
    return FilterError(f"expected {expected} at position {token.pos}{got}{suffix}", token.pos)


def _unexpected_after_term(token: _Token) -> FilterError:
    if token.kind is _Kind.WORD and token.text in ("OR", "NOT"):
        return _unsupported_keyword(token)
    if token.kind is _Kind.WORD and token.text.upper() == "AND":
        return FilterError(
            f'"{token.text}" at position {token.pos} must be written in uppercase: AND',
            token.pos,
        )
    if token.kind in (_Kind.LPAREN, _Kind.RPAREN):
        return _unsupported_parenthesis(token)
    if token.kind is _Kind.OTHER:
        return _unexpected_character(token)
    return FilterError(
        f"unexpected {_describe(token)} at position {token.pos}; "
        'expected "AND" or the end of the filter',
        token.pos,
    )


def _too_many_terms(token: _Token) -> FilterError:
    return FilterError(
        f"too many comparisons: at most {MAX_TERMS} are allowed "
        f"(comparison {MAX_TERMS + 1} starts at position {token.pos})",
        token.pos,
    )
