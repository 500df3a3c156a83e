"""`column IN (a list)` with one statement text whatever the list's length.

An expanding IN is a statement of its own for every length (prepared again, per connection,
by asyncpg); on PostgreSQL the list goes as one array instead (`= ANY`), elsewhere (SQLite)
it expands."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY


def one_of(
    column: sa.ColumnElement[Any], parameter: str, item_type: sa.types.TypeEngine[Any]
) -> dict[bool, sa.ColumnElement[bool]]:
    """The condition `column` is one of the list bound as `parameter`, by `is_postgres`."""
    return {
        False: column.in_(sa.bindparam(parameter, expanding=True)),
        True: column == sa.any_(sa.bindparam(parameter, type_=ARRAY(item_type))),
    }
