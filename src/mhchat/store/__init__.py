"""Persistence: the database port, migrations and typed queries."""
