"""`dbmig grants`: the roles the product needs, printed for a DBA or applied with an admin connection.

Credentials come from the environment only: role passwords from
DBMIG_SOURCE_ROLE_PASSWORD / DBMIG_DEST_ROLE_PASSWORD (or the password of
DBMIG_SOURCE_URL / DBMIG_DEST_URL when the role is that URL's user), the
admin connection from DBMIG_ADMIN_URL (`--admin-url` works too, but argv is
visible to every user of the machine). Nothing printed carries a password.
"""
from __future__ import annotations

import os

import click
import psycopg2
from click.core import ParameterSource
from sqlalchemy.engine import make_url

from dbmig_pipeline.db import check_connection, create_db_engine, resolve_endpoints
from dbmig_pipeline.grants import (
    GrantsRefused,
    Statement,
    dest_statements,
    execute,
    existing_role,
    password_verifier,
    render,
    role_statement,
    source_statements,
    validate_role_name,
)
from dbmig_pipeline.schema import prepare_destination
from dbmig_pipeline.settings import ConfigError, Settings, SideSettings, _parse_url, mask_url
from dbmig_pipeline.cli_common import _friendly_errors



def _role_and_password(option: str | None, url: str | None, side: str, default: str) -> tuple[str, str | None]:
    """The role name (option/variable, else the URL's user, else `default`) and its password, if any."""
    parsed = make_url(url) if url else None
    role = validate_role_name(option or (parsed.username if parsed and parsed.username else default),
                              f"--{side.lower()}-role / DBMIG_{side}_ROLE")
    password = os.environ.get(f"DBMIG_{side}_ROLE_PASSWORD") or None
    if password is None and parsed is not None and parsed.username == role:
        password = parsed.password
    return role, password


def _admin_url(value: str | None, name: str) -> str | None:
    return _parse_url({name: value}, name) if value else None


def _on_database(url: str, database: str) -> str:
    """The admin's server and credentials, on the product's database (grants are per database)."""
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _admin_engine(url: str, database: str, side: SideSettings, variable: str, settings: Settings):
    admin_side = SideSettings(env_name=variable, url=url, sslmode=side.sslmode, sslrootcert=side.sslrootcert)
    engine = create_db_engine(_on_database(url, database), admin_side, settings, read_only=False, purpose="grants")
    check_connection(engine, admin_side, settings)
    return engine


def _apply(engine, role: str, password: str | None, statements: list[Statement]) -> list[str]:
    conn = engine.raw_connection()
    try:
        with conn.cursor() as cur:
            verifier = password_verifier(cur, role, password) if password else None
            everything = [role_statement(role, exists=existing_role(cur, role), verifier=verifier), *statements]
            for statement in everything:
                try:
                    execute(cur, [statement])
                except psycopg2.Error as exc:
                    conn.rollback()
                    reason = exc.diag.message_primary or type(exc).__name__
                    raise GrantsRefused(f"{render([statement], conn.driver_connection)[0]} was refused: {reason} "
                                        "(nothing of this database's grants was applied)") from None
        conn.commit()
        return render(everything, conn.driver_connection)
    finally:
        conn.close()


@click.command()
@click.option("--apply", "apply_", is_flag=True,
              help="Create or update the roles and grant them (needs --admin-url / DBMIG_ADMIN_URL).")
@click.option("--admin-url", envvar="DBMIG_ADMIN_URL", show_envvar=True,
              help="A superuser or owner of the destination (and of the source, unless --source-admin-url).")
@click.option("--source-admin-url", envvar="DBMIG_SOURCE_ADMIN_URL", show_envvar=True,
              help="A superuser or owner on the source server, if it is another server.")
@click.option("--source-role", envvar="DBMIG_SOURCE_ROLE", show_envvar=True,
              help="Reader role. Default: the user of DBMIG_SOURCE_URL, else dbmig_reader.")
@click.option("--dest-role", envvar="DBMIG_DEST_ROLE", show_envvar=True,
              help="Writer role. Default: the user of DBMIG_DEST_URL, else dbmig_writer.")
@_friendly_errors
def grants(apply_: bool, admin_url: str | None, source_admin_url: str | None, source_role: str | None,
           dest_role: str | None) -> None:
    """Print (or --apply) the least-privileged roles: a source reader and a destination writer."""
    settings = Settings.from_env()
    reader, reader_password = _role_and_password(source_role, settings.source.url, "SOURCE", "dbmig_reader")
    writer, writer_password = _role_and_password(dest_role, settings.dest.url, "DEST", "dbmig_writer")
    if reader == writer:
        raise ConfigError(f"the source and destination roles must differ (both are {reader!r}): "
                          "the reader must not hold the writer's rights")
    admin = _admin_url(admin_url, "DBMIG_ADMIN_URL")
    source_admin = _admin_url(source_admin_url, "DBMIG_SOURCE_ADMIN_URL") or admin
    ctx = click.get_current_context()
    for name, url in (("admin_url", admin), ("source_admin_url", source_admin)):
        if url and make_url(url).password and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            click.echo(f"dbmig: warning: a password given as --{name.replace('_', '-')} is visible to every user "
                       "of this machine (ps); prefer the environment variable", err=True)
    endpoints = resolve_endpoints(settings)
    source_db = make_url(endpoints.source_url).database
    dest_db = make_url(endpoints.dest_url).database
    src_grants, dst_grants = source_statements(reader, source_db), dest_statements(writer, dest_db)

    if not apply_:
        engine = create_db_engine(_on_database(admin, dest_db) if admin else endpoints.dest_url, settings.dest,
                                  settings, read_only=True, purpose="grants")
        try:
            conn = engine.raw_connection()
            try:
                _print_plan(conn.driver_connection, reader, writer, source_db, dest_db, src_grants, dst_grants)
            finally:
                conn.close()
        finally:
            engine.dispose()
        return

    if admin is None:
        raise ConfigError("dbmig grants --apply needs a superuser or owner connection: set DBMIG_ADMIN_URL "
                          "(or --admin-url); without --apply the statements are printed for a DBA")
    src_engine = _admin_engine(source_admin, source_db, settings.source,
                               "DBMIG_SOURCE_ADMIN_URL" if source_admin_url else "DBMIG_ADMIN_URL", settings)
    dst_engine = _admin_engine(admin, dest_db, settings.dest, "DBMIG_ADMIN_URL", settings)
    try:
        # The admin creates (and so owns) `app` and `dbmig`: the writer can then never alter them.
        prepare_destination(dst_engine)
        applied = _apply(src_engine, reader, reader_password, src_grants)
        applied += _apply(dst_engine, writer, writer_password, dst_grants)
    finally:
        src_engine.dispose()
        dst_engine.dispose()
    for line in applied:
        click.echo(line)
    click.echo(f"roles granted: reader {reader!r} on {mask_url(_on_database(source_admin, source_db))}, "
               f"writer {writer!r} on {mask_url(_on_database(admin, dest_db))}")


def _print_plan(conn, reader, writer, source_db, dest_db, src_grants, dst_grants) -> None:
    click.echo("-- Roles for dbmig. --apply runs these with DBMIG_ADMIN_URL; a role that exists is ALTERed instead,")
    click.echo("-- and its password (DBMIG_SOURCE_ROLE_PASSWORD / DBMIG_DEST_ROLE_PASSWORD, else the password of")
    click.echo("-- DBMIG_SOURCE_URL / DBMIG_DEST_URL) is sent as a SCRAM verifier, never in clear text.")
    click.echo("-- pg_read_all_stats lets the reader see when other sessions' transactions began, so that")
    click.echo("-- the sync cursor never passes a transaction still open (rows committed late).")
    click.echo(f"\n-- on the source server, database {source_db}")
    for line in render([role_statement(reader, exists=False), *src_grants], conn):
        click.echo(line)
    click.echo(f"\n-- on the destination server, database {dest_db}, after `dbmig init` as the admin")
    click.echo("-- (the admin owns app and dbmig; rerun `dbmig grants --apply` after every upgrade)")
    for line in render([role_statement(writer, exists=False), *dst_grants], conn):
        click.echo(line)
