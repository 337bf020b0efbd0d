"""REST side of live sessions (docs/protocol.md §9)."""
