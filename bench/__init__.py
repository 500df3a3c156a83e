"""Benchmarks for the Formation MCP control plane: `python -m bench [unary|list|watch]`.

Benchmarks print figures; they never assert on timings (see bench/README.md).
"""
