-- Refunds: one row per refund asked for, the reconciler's bookkeeping for
-- those left pending, and the simulated processor's own refund ledger.
--
-- The over-refund guard is not a constraint of these tables: the statement
-- that inserts a refund locks its payment's row first and sums the payment's
-- pending and succeeded refunds in a statement of its own, under that lock
-- (sql/queries.sql, insert_pending_refund).

CREATE TABLE bc_payment.refunds (
    id                  uuid PRIMARY KEY,
    payment_id          uuid        NOT NULL REFERENCES bc_payment.payments (id),
    order_id            uuid        NOT NULL,
    customer_id         uuid        NOT NULL,
    amount              numeric(20, 4) NOT NULL CHECK (amount > 0),
    currency            char(3)     NOT NULL,
    reason              text        NOT NULL
        CHECK (reason IN ('requested_by_customer', 'event_cancelled', 'duplicate', 'fraudulent')),
    status              text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    error_code          text,
    error_message       text,
    transaction_id      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    processed_at        timestamptz,
    is_simulated        boolean     NOT NULL,
    idempotency_key     text        NOT NULL UNIQUE,
    request_fingerprint text        NOT NULL,
    CHECK ((status = 'pending') = (processed_at IS NULL))
);

CREATE INDEX refunds_by_payment
    ON bc_payment.refunds (payment_id, created_at DESC);

CREATE INDEX refunds_pending_by_age
    ON bc_payment.refunds (created_at)
    WHERE status = 'pending';

CREATE TABLE bc_payment.refund_checks (
    refund_id     uuid        PRIMARY KEY REFERENCES bc_payment.refunds (id),
    attempts      integer     NOT NULL,
    next_check_at timestamptz NOT NULL
);

CREATE TABLE bc_payment.simulator_refunds (
    refund_id      uuid        PRIMARY KEY,
    payment_id     uuid        NOT NULL,
    amount         numeric(20, 4) NOT NULL,
    currency       char(3)     NOT NULL,
    succeeded      boolean     NOT NULL,
    transaction_id text,
    error_code     text,
    refunded_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX simulator_refunds_by_payment
    ON bc_payment.simulator_refunds (payment_id);

CREATE TABLE bc_payment.simulator_refund_voids (
    refund_id uuid        PRIMARY KEY,
    voided_at timestamptz NOT NULL DEFAULT now()
);
