"""Policies: guardrails on what an account may do with tools (rules, quotas, rate limits)."""
