"""Fixtures for the search tests: a throwaway PostgreSQL server (tests/search/pg.py)."""

from __future__ import annotations

import itertools

import pytest

from tests.search.pg import pg_bin, start_server

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    """One server for the session; skipped only when PostgreSQL is not installed."""
    if pg_bin() is None:
        pytest.skip("PostgreSQL server binaries not installed (make system-deps installs "
                    "Debian's postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2 missing: pip install -e '.[dev]'")
    server = start_server()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server):
    """The URL (with the password) of a fresh, empty database on the session's server."""
    return pg_server.create_db(f"odyssey_test_{next(_names)}")
