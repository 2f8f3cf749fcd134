"""The integration tier: the WSGI app against real PostgreSQL, broker and sandbox."""


def pytest_generate_tests(metafunc):
    # Every test here that reaches the database runs twice: directly, and
    # through a transaction-pooling PgBouncer (tests/conftest.py, db_route).
    if "database_url" in metafunc.fixturenames:
        metafunc.parametrize("db_route", ["direct", "pgbouncer"], indirect=True, scope="session")
