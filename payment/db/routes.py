"""How the service reaches PostgreSQL (DB_ROUTE): straight to the server, or
through a transaction-pooling PgBouncer that may hand each transaction
another server connection. The pool (payment/db/pool.py) decides from it
where the settings go and whether statements are prepared."""

DIRECT = "direct"
TRANSACTION_POOLER = "transaction-pooler"
DB_ROUTES = (DIRECT, TRANSACTION_POOLER)
