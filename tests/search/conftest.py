"""Fixtures for the search tests: a throwaway PostgreSQL server (tests/search/pg.py) and a
throwaway SLURM cluster with accounting (tests/search/slurm.py)."""

from __future__ import annotations

import itertools

import pytest

from tests.requirements import require
from tests.search.pg import start_server
from tests.search.slurm import missing_binaries, start_cluster

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    """One server for the session; skipped (failed in CI) when PostgreSQL is not installed."""
    require("postgresql")
    require("psycopg2")
    server = start_server()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server):
    """The URL (with the password) of a fresh, empty database on the session's server."""
    return pg_server.create_db(f"odyssey_test_{next(_names)}")


@pytest.fixture(scope="session")
def slurm_cluster():
    """One cluster for the session (tests marked `slurm`), stopped at its end leaving no
    process; an error, not a skip, when SLURM is missing: `pytest -m slurm` asked for it."""
    missing = missing_binaries()
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: make system-deps installs Debian's "
                    "slurmctld slurmd slurm-client slurmdbd mariadb-server")
    try:
        import submitit  # noqa: F401
    except ImportError:
        pytest.fail("submitit missing: pip install -e '.[dev]' (hydra-submitit-launcher)")
    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def slurm(slurm_cluster):
    """The session's cluster with an empty queue before and after the test."""
    slurm_cluster.cancel_all()
    yield slurm_cluster
    slurm_cluster.cancel_all()
