-- Schema of the payment service. Idempotent: applied at every start-up,
-- under an advisory lock so that concurrent starters take turns.

CREATE SCHEMA IF NOT EXISTS bc_payment;

CREATE TABLE IF NOT EXISTS bc_payment.payments (
    id                 uuid PRIMARY KEY,
    order_id           uuid        NOT NULL,
    customer_id        uuid        NOT NULL,
    reservation_id     uuid,
    amount             numeric(20, 4) NOT NULL CHECK (amount > 0),
    currency           char(3)     NOT NULL,
    payment_method     text        NOT NULL,
    status             text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    error_code         text,
    error_message      text,
    failure_reason     text,
    transaction_id     text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    processed_at       timestamptz,
    is_simulated       boolean     NOT NULL,
    simulated_response text,
    CHECK ((status = 'pending') = (processed_at IS NULL))
);

-- The uniqueness guard: per order, at most one payment that is in flight or
-- has succeeded. A second charge can only start after a failure. The
-- INSERT ... ON CONFLICT in queries.sql names this predicate.
CREATE UNIQUE INDEX IF NOT EXISTS payments_one_live_payment_per_order
    ON bc_payment.payments (order_id)
    WHERE status IN ('pending', 'succeeded');

-- The processor's own id for the payment (a Stripe PaymentIntent id), stored
-- before the charge so that the charge can always be looked up again.
ALTER TABLE bc_payment.payments ADD COLUMN IF NOT EXISTS gateway_reference text;

CREATE INDEX IF NOT EXISTS payments_by_order
    ON bc_payment.payments (order_id, created_at DESC);

CREATE INDEX IF NOT EXISTS payments_pending_by_age
    ON bc_payment.payments (created_at)
    WHERE status = 'pending';

-- Transactional outbox: an event row is written in the same transaction as
-- the payment outcome, and produced to Kafka only after that commit.
CREATE TABLE IF NOT EXISTS bc_payment.outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    payment_id   uuid        NOT NULL REFERENCES bc_payment.payments (id),
    topic        text        NOT NULL,
    event_key    text        NOT NULL,
    event_type   text        NOT NULL,
    -- The exact bytes produced: text, not jsonb, so that amounts keep their
    -- decimals and fields their documented order.
    payload      text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    attempts     integer     NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS outbox_unsent
    ON bc_payment.outbox (seq)
    WHERE sent_at IS NULL;

CREATE INDEX IF NOT EXISTS outbox_unsent_by_key
    ON bc_payment.outbox (event_key)
    WHERE sent_at IS NULL;

CREATE INDEX IF NOT EXISTS outbox_sent_at
    ON bc_payment.outbox (sent_at)
    WHERE sent_at IS NOT NULL;

-- The reconciler's bookkeeping for pending payments it has asked the gateway
-- about: how often, and not again before next_check_at (a lease while one
-- reconciler asks, then the backoff after an unknown answer).
CREATE TABLE IF NOT EXISTS bc_payment.payment_checks (
    payment_id    uuid        PRIMARY KEY REFERENCES bc_payment.payments (id),
    attempts      integer     NOT NULL,
    next_check_at timestamptz NOT NULL
);

-- The simulated processor's own records, kept apart from the payments as an
-- external processor's would be: one row per charge it took (keyed by the
-- payment id, the idempotency key), committed on its own when it charges.
CREATE TABLE IF NOT EXISTS bc_payment.simulator_charges (
    payment_id     uuid        PRIMARY KEY,
    order_id       uuid        NOT NULL,
    amount         numeric(20, 4) NOT NULL,
    currency       char(3)     NOT NULL,
    succeeded      boolean     NOT NULL,
    transaction_id text,
    error_code     text,
    error_message  text,
    failure_reason text,
    response       text        NOT NULL,
    charged_at     timestamptz NOT NULL DEFAULT now()
);

-- Payment ids the simulated processor was told will never be charged (the
-- reconciler found no charge): a charge still on its way for one is refused.
CREATE TABLE IF NOT EXISTS bc_payment.simulator_voids (
    payment_id uuid        PRIMARY KEY,
    voided_at  timestamptz NOT NULL DEFAULT now()
);
