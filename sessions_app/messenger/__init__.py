"""The messenger: direct and group conversations between users (docs/messenger.md)."""
