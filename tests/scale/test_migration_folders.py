"""Every SQLite migration has its PostgreSQL twin, with the same number and name."""

from __future__ import annotations

from mhchat.store.migrate import load_migrations, migrations_root


def test_both_dialects_have_the_same_migration_files() -> None:
    root = migrations_root()
    sqlite = sorted(p.name for p in (root / "sqlite").glob("*.sql"))
    postgresql = sorted(p.name for p in (root / "postgresql").glob("*.sql"))
    missing = sorted(set(sqlite) - set(postgresql))
    extra = sorted(set(postgresql) - set(sqlite))
    assert not missing, f"add these to migrations/postgresql/ (types adapted): {missing}"
    assert not extra, f"these PostgreSQL migrations have no SQLite twin: {extra}"
    # Both folders load (names and numbering valid).
    assert [m.version for m in load_migrations(root / "sqlite")] == [
        m.version for m in load_migrations(root / "postgresql")
    ]
