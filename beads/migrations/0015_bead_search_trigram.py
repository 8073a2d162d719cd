"""Trigram indexes for the admin's bead search (README, "Performance"): Django's icontains is
`UPPER(col) LIKE UPPER('%term%')` on PostgreSQL, which a GIN index of `UPPER(col)` with
pg_trgm's operator class serves. PostgreSQL only: SQLite has no such index and scans (its
databases are small). pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner
may create it."""

from django.db import migrations

INDEXES = [
    ("bead_title_trgm", "beads_bead", "title"),
    ("mr_pr_url_trgm", "beads_mergerequest", "pr_url"),
    ("mr_branch_trgm", "beads_mergerequest", "branch"),
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (UPPER({column}) gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _column in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("beads", "0014_merge_request_pr_etag")]

    operations = [migrations.RunPython(create, drop)]
