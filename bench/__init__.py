"""Benchmark harness: load generator, comparison servers, orchestrator (README.md)."""
