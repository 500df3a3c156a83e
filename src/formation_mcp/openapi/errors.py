"""The one error of the OpenAPI generator."""

from __future__ import annotations


class OpenApiError(Exception):
    """The descriptor set or Envoy's configuration cannot be turned into a document."""
