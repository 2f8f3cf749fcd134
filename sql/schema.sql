-- The payment service's schema as it stands after every migration in
-- sql/migrations/, in one readable piece.
--
-- Documentation, not what production applies: databases are changed only by
-- the numbered files in sql/migrations/ (`python -m payment migrate`, which
-- records each in bc_payment.schema_migrations). tests/integration/
-- test_migrations.py builds one database from this file and one from the
-- migrations and compares their catalogs, so a new migration must be
-- reflected here (and this file changes only with a migration).

CREATE SCHEMA bc_payment;

CREATE TABLE bc_payment.payments (
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
    -- The processor's own id for the payment (a Stripe PaymentIntent id),
    -- stored before the charge so that the charge can always be looked up
    -- again. (0002)
    gateway_reference  text,
    CHECK ((status = 'pending') = (processed_at IS NULL))
);

-- The uniqueness guard: per order, at most one payment that is in flight or
-- has succeeded. A second charge can only start after a failure. The
-- INSERT ... ON CONFLICT in queries.sql names this predicate.
CREATE UNIQUE INDEX payments_one_live_payment_per_order
    ON bc_payment.payments (order_id)
    WHERE status IN ('pending', 'succeeded');

CREATE INDEX payments_by_order
    ON bc_payment.payments (order_id, created_at DESC);

CREATE INDEX payments_pending_by_age
    ON bc_payment.payments (created_at)
    WHERE status = 'pending';

-- Transactional outbox: an event row is written in the same transaction as
-- the payment outcome, and produced to Kafka only after that commit.
CREATE TABLE bc_payment.outbox (
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

CREATE INDEX outbox_unsent
    ON bc_payment.outbox (seq)
    WHERE sent_at IS NULL;

CREATE INDEX outbox_unsent_by_key
    ON bc_payment.outbox (event_key)
    WHERE sent_at IS NULL;

CREATE INDEX outbox_sent_at
    ON bc_payment.outbox (sent_at)
    WHERE sent_at IS NOT NULL;

-- The reconciler's bookkeeping for pending payments it has asked the gateway
-- about: how often, and not again before next_check_at (a lease while one
-- reconciler asks, then the backoff after an unknown answer). (0002)
CREATE TABLE bc_payment.payment_checks (
    payment_id    uuid        PRIMARY KEY REFERENCES bc_payment.payments (id),
    attempts      integer     NOT NULL,
    next_check_at timestamptz NOT NULL
);

-- The simulated processor's own records, kept apart from the payments as an
-- external processor's would be: one row per payment id (the idempotency
-- key), committed on its own, either the charge it took or the void a lookup
-- left when it found none. The primary key decides between a charge and a
-- void of the same payment: the first INSERT ... ON CONFLICT DO NOTHING wins,
-- without a lock (simulator.sql). (0005; two tables from 0002 before it)
CREATE TABLE bc_payment.simulator_ledger (
    payment_id     uuid        PRIMARY KEY,
    voided         boolean     NOT NULL DEFAULT false,
    order_id       uuid,
    amount         numeric(20, 4),
    currency       char(3),
    succeeded      boolean,
    transaction_id text,
    error_code     text,
    error_message  text,
    failure_reason text,
    response       text,
    charged_at     timestamptz,
    voided_at      timestamptz,
    -- A charge has all of a charge's columns; a void nothing but its time.
    CONSTRAINT simulator_ledger_charge_complete CHECK (
        voided OR (num_nulls(order_id, amount, currency, succeeded, response, charged_at) = 0
                   AND voided_at IS NULL)),
    CONSTRAINT simulator_ledger_void_bare CHECK (
        NOT voided OR (voided_at IS NOT NULL
                       AND num_nonnulls(order_id, amount, currency, succeeded, transaction_id, error_code,
                                        error_message, failure_reason, response, charged_at) = 0))
);

-- The charges the simulated processor took, as the table of this name held
-- them before 0005. A row inserted through it is a charge taken now.
CREATE VIEW bc_payment.simulator_charges AS
SELECT payment_id, order_id, amount, currency, succeeded, transaction_id,
       error_code, error_message, failure_reason, response, charged_at
  FROM bc_payment.simulator_ledger
 WHERE NOT voided;

ALTER VIEW bc_payment.simulator_charges ALTER COLUMN charged_at SET DEFAULT now();

-- Payment ids the simulated processor was told will never be charged (the
-- reconciler found no charge): a charge still on its way for one is refused.
-- Read it only: a row inserted through it could not set `voided`, and the
-- ledger's checks refuse it (a void is inserted into simulator_ledger).
CREATE VIEW bc_payment.simulator_voids AS
SELECT payment_id, voided_at
  FROM bc_payment.simulator_ledger
 WHERE voided;

-- The payment gateway's webhook events already handled, by the gateway's
-- own event id: a repeated delivery is answered without being acted on
-- again. Rows past their retention are deleted by the relay. (0003)
CREATE TABLE bc_payment.webhook_events (
    event_id    text        PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_events_by_age
    ON bc_payment.webhook_events (received_at);

-- One row per refund asked for (POST /payments/{paymentId}/refunds). The
-- order, customer and currency are the payment's, copied so that a refund
-- is shown without a join. A refund's money is counted against its payment
-- from the moment it is pending; the statement that inserts one locks the
-- payment's row and sums its pending and succeeded refunds under that lock,
-- so that together they never exceed the payment (queries.sql,
-- insert_pending_refund). idempotency_key is the client's Idempotency-Key;
-- request_fingerprint the hash of the payment id and the body it came with,
-- so that the key sent again with another body is told apart. (0004)
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
    -- The processor's id for the refund.
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

-- The reconciler's bookkeeping for pending refunds, as payment_checks is for
-- payments. (0004)
CREATE TABLE bc_payment.refund_checks (
    refund_id     uuid        PRIMARY KEY REFERENCES bc_payment.refunds (id),
    attempts      integer     NOT NULL,
    next_check_at timestamptz NOT NULL
);

-- The simulated processor's refunds, keyed by the refund id (its idempotency
-- key), committed on its own as the charges in simulator_ledger are. (0004)
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

-- Refund ids the simulated processor was told it never received (the
-- reconciler found no refund): one still on its way is refused. (0004)
CREATE TABLE bc_payment.simulator_refund_voids (
    refund_id uuid        PRIMARY KEY,
    voided_at timestamptz NOT NULL DEFAULT now()
);

-- Kept by `python -m payment migrate` (payment/db/migrations.py): one row per
-- migration applied, with the SHA-256 of its file as it was applied.
CREATE TABLE bc_payment.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
