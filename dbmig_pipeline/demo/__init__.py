"""The embedded default: a local PostgreSQL and synthetic legacy data."""
