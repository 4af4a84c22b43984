"""Who may do what in a team log: PostgreSQL roles over the DuckLake catalog.

A team log's catalog is a PostgreSQL schema of DuckLake's own tables (snapshots, data files,
statistics, inlined rows); every read and write of the log goes through them, so PostgreSQL's
privileges on them are what enforce a role, whatever a client runs (raw SQL included):

- ``reader``: USAGE on the schema and SELECT on its tables; attaching and querying write
  nothing, and any insert is refused by PostgreSQL ("permission denied for table ...").
- ``writer``: also INSERT on the tables a commit appends to, UPDATE on the statistics and
  inlined-row tables, and CREATE on the schema (DuckLake creates a table for inlined deletes
  when rows are updated); no INSERT on the tables that define the lake's tables and columns,
  so a writer cannot create or alter tables.
- ``maintainer``: a writer whose actions mlops-nb allows to register models, move aliases
  and purge (also UPDATE on the data and delete file tables: deleting all of a file's rows
  ends the file); DuckLake's catalog has no per-lake-table privileges, so PostgreSQL enforces the
  writer's limits for it and mlops-nb checks the membership (``pg_has_role``).
- ``admin``: owns the schema: creates the log (``team init``), changes its tables, runs
  maintenance (flushing inlined rows drops tables, which only their owner may do).

Each role is a group role without login (``mlops_nb_reader``...), nested (admin > maintainer >
writer > reader). A person's login role is granted a group and set to act as it in every
session (``ALTER ROLE ... SET role``), so the tables DuckLake creates later (one per schema
change for inlined rows) are owned by the group, and the default privileges set here make them
readable by readers and writable by writers at once: a reader never meets a table it may not
read. Audit trails use ``session_user``, the person's login, not the group.
"""

from __future__ import annotations

from mlops_nb.log.sqltext import identifier, literal

ROLES = ("reader", "writer", "maintainer", "admin")
_PARENT = {"writer": "reader", "maintainer": "writer", "admin": "maintainer"}
# DuckLake catalog tables that define schemas, tables, columns, views and settings: only the
# admin inserts there (a writer that could would be able to create or alter lake tables)
DEFINITION_TABLES = (
    "ducklake_metadata", "ducklake_schema", "ducklake_table", "ducklake_view",
    "ducklake_column", "ducklake_tag", "ducklake_column_tag", "ducklake_schema_versions",
    "ducklake_macro", "ducklake_macro_impl", "ducklake_macro_parameters",
    "ducklake_column_mapping", "ducklake_name_mapping", "ducklake_partition_info",
    "ducklake_partition_column", "ducklake_sort_info", "ducklake_sort_expression",
)  # fmt: skip
# tables whose rows a commit updates in place rather than appends
_UPDATED_TABLES = ("ducklake_table_stats", "ducklake_table_column_stats")


class RoleError(ValueError):
    """An unknown role or an unusable user name (one line)."""


def group_role(role: str) -> str:
    """The PostgreSQL group role behind one of ``ROLES``."""
    if role not in ROLES:
        raise RoleError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return f"mlops_nb_{role}"


def setup_statements(schema: str) -> list[str]:
    """Create the four group roles when missing and give each its privileges on the catalog
    ``schema``; safe to run again (after new catalog tables appeared, it grants on them too)."""
    quoted = identifier(schema)
    groups = {role: group_role(role) for role in ROLES}
    statements = [_create_role(group, login=False) for group in groups.values()]
    statements += [
        f"GRANT {groups[parent]} TO {groups[child]}" for child, parent in _PARENT.items()
    ]
    reader, writer, admin = groups["reader"], groups["writer"], groups["admin"]
    statements += [
        f"GRANT USAGE ON SCHEMA {quoted} TO {reader}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {quoted} TO {reader}",
        f"GRANT CREATE ON SCHEMA {quoted} TO {writer}",
        _grant_writer_tables(schema, writer),
        f"ALTER SCHEMA {quoted} OWNER TO {admin}",
        _own_tables(schema, admin),
        # a purge that deletes every row of a file (an artifact's blob) ends the file
        f"GRANT UPDATE ON {quoted}.ducklake_data_file, {quoted}.ducklake_delete_file "
        f"TO {groups['maintainer']}",
    ]
    creators = ", ".join(groups[role] for role in ("writer", "maintainer", "admin"))
    statements += [
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {creators} IN SCHEMA {quoted} "
        f"GRANT SELECT ON TABLES TO {reader}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {creators} IN SCHEMA {quoted} "
        f"GRANT SELECT, INSERT, UPDATE ON TABLES TO {writer}",
    ]
    return statements


def table_grant_statements(schema: str) -> list[str]:
    """The group roles' privileges on the catalog tables as they are now (the part of
    ``setup_statements`` that tables made since need: DuckLake makes tables as it goes, owned
    by whoever's transaction made them, and without grants)."""
    quoted = identifier(schema)
    groups = {role: group_role(role) for role in ROLES}
    return [
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {quoted} TO {groups['reader']}",
        _grant_writer_tables(schema, groups["writer"]),
        _own_tables(schema, groups["admin"]),
    ]


def grant_statements(user: str, role: str) -> list[str]:
    """Give ``user`` a role: its login role is created when missing, without a password
    (credentials are the administrator's to set), made a member of the group, and set to act
    as the group in its sessions. Other groups it had are revoked, so a role can be lowered."""
    if not user or not user.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise RoleError(
            f"user name {user!r} is not a plain PostgreSQL role name (letters, digits, _ - .)"
        )
    group = group_role(role)
    login = identifier(user)
    others = [group_role(other) for other in ROLES if other != role]
    return [
        _create_role(user, login=True),
        *(f"REVOKE {other} FROM {login}" for other in others),
        f"GRANT {group} TO {login}",
        f"ALTER ROLE {login} SET role = {literal(group)}",
    ]


def _create_role(name: str, *, login: bool) -> str:
    kind = "LOGIN" if login else "NOLOGIN"
    return (
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
        f"{literal(name)}) THEN CREATE ROLE {identifier(name)} {kind}; END IF; END $$"
    )


def _grant_writer_tables(schema: str, writer: str) -> str:
    """INSERT on every catalog table but the definition tables; UPDATE where rows change."""
    definitions = ", ".join(literal(name) for name in DEFINITION_TABLES)
    updated = ", ".join(literal(name) for name in _UPDATED_TABLES)
    return (
        "DO $$ DECLARE t record; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE "
        f"schemaname = {literal(schema)} LOOP "
        f"IF t.tablename NOT IN ({definitions}) THEN EXECUTE format('GRANT INSERT ON %I.%I TO "
        f"{writer}', {literal(schema)}, t.tablename); END IF; "
        f"IF t.tablename IN ({updated}) OR t.tablename LIKE 'ducklake\\_inlined\\_%' THEN "
        f"EXECUTE format('GRANT UPDATE ON %I.%I TO {writer}', {literal(schema)}, t.tablename); "
        "END IF; END LOOP; END $$"
    )


def _own_tables(schema: str, admin: str) -> str:
    """The catalog tables made so far (by whoever ran ``team init``) owned by the admin group."""
    return (
        "DO $$ DECLARE t record; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE "
        f"schemaname = {literal(schema)} LOOP EXECUTE format('ALTER TABLE %I.%I OWNER TO "
        f"{admin}', {literal(schema)}, t.tablename); END LOOP; END $$"
    )
