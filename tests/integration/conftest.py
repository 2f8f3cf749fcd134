"""The integration tier: the WSGI app against real PostgreSQL, broker and sandbox."""

from tests.support import parametrize_db_route


def pytest_generate_tests(metafunc):
    # Every test here that reaches the database runs twice: directly, and
    # through a transaction-pooling PgBouncer (tests/conftest.py, db_route);
    # those marked route_independent directly only.
    parametrize_db_route(metafunc)
