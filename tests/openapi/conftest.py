"""Fixtures of the OpenAPI tests."""

from __future__ import annotations

import pytest
from tests.support.openapi_documents import JsonObject, committed_document


@pytest.fixture(scope="module")
def document() -> JsonObject:
    return committed_document()
