"""REST API of the messenger (PROTOCOL §9)."""
