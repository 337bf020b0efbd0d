"""Comparison servers: the seed's FastAPI design and a trivial raw fan-out server."""
