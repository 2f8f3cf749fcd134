-- The schema as the first releases created it: payments, the one-live-payment
-- guard, the transactional outbox.
--
-- IF NOT EXISTS, unlike later migrations: a database created by the former
-- sql/schema.sql (applied at every start-up, before there were versioned
-- migrations) has some or all of these objects and no schema_migrations
-- table. Running this file over it fills in what is missing (the first
-- releases had no outbox_unsent_by_key) and records it as version 1.

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
-- has succeeded. A second charge can only start after a failure.
CREATE UNIQUE INDEX IF NOT EXISTS payments_one_live_payment_per_order
    ON bc_payment.payments (order_id)
    WHERE status IN ('pending', 'succeeded');

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
