-- What settling from the gateway's answer needs: the processor's reference
-- on each payment, the reconciler's bookkeeping, the simulated processor's
-- ledger.
--
-- IF NOT EXISTS for the same reason as in 0001: the former sql/schema.sql
-- created these too, so a database it last ran on may already have them.

ALTER TABLE bc_payment.payments ADD COLUMN IF NOT EXISTS gateway_reference text;

CREATE TABLE IF NOT EXISTS bc_payment.payment_checks (
    payment_id    uuid        PRIMARY KEY REFERENCES bc_payment.payments (id),
    attempts      integer     NOT NULL,
    next_check_at timestamptz NOT NULL
);

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

CREATE TABLE IF NOT EXISTS bc_payment.simulator_voids (
    payment_id uuid        PRIMARY KEY,
    voided_at  timestamptz NOT NULL DEFAULT now()
);
