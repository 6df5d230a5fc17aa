"""Which failures are retried: technical ones only."""
import psycopg2
import psycopg2.errors
import pytest
from sqlalchemy import exc as sa_exc

from dbmig_pipeline.engine.errors import IntegrityHalt, is_technical


@pytest.mark.parametrize(
    "error",
    [
        psycopg2.OperationalError("server closed the connection unexpectedly"),
        psycopg2.InterfaceError("connection already closed"),
        sa_exc.OperationalError("SELECT 1", {}, psycopg2.OperationalError("could not connect")),
        sa_exc.DisconnectionError("gone"),
    ],
)
def test_connection_trouble_is_technical(error):
    assert is_technical(error)


@pytest.mark.parametrize(
    "error",
    [
        IntegrityHalt("orders: two orders share AB-1", [1, 2]),
        ValueError("bad value"),
        psycopg2.DataError("invalid input syntax"),
        sa_exc.IntegrityError("INSERT", {}, psycopg2.IntegrityError("duplicate key")),
    ],
)
def test_data_and_logic_errors_are_not_retried(error):
    assert not is_technical(error)
