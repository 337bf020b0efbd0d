"""The project's SQLite backend: Django's, placeholders converted once a statement."""
