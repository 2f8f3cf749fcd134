-- Named queries of the simulated payment processor's ledger, loaded once by
-- payment/gateways/simulator.py: the processor's own records, apart from the
-- service's (sql/queries.sql). Each starts with a `-- name:` line;
-- parameters are psycopg named placeholders. A charge and a lookup are
-- single statements; a refund and its lookup are groups of statements, sent
-- in one round trip, under their lock.

-- name: simulator_charge
-- The charge, taken unless the ledger already holds a row for the payment
-- id: a charge (the first one stays) or a void. One statement, no lock: the
-- primary key decides, and the first writer wins. A row comes back only when
-- this call took the charge; with none, simulator_ledger_row says what the
-- ledger holds.
INSERT INTO bc_payment.simulator_ledger (
    payment_id, order_id, amount, currency, succeeded, transaction_id,
    error_code, error_message, failure_reason, response, charged_at)
VALUES (%(payment_id)s, %(order_id)s, %(amount)s, %(currency)s, %(succeeded)s, %(transaction_id)s,
        %(error_code)s, %(error_message)s, %(failure_reason)s, %(response)s, now())
    ON CONFLICT (payment_id) DO NOTHING
RETURNING succeeded, transaction_id, error_code, error_message, failure_reason, response;

-- name: simulator_lookup
-- The void of a payment id the ledger holds nothing for, so that a charge
-- still on its way is refused; as for a charge, the first writer wins. A row
-- comes back only when this call voided it; with none, simulator_ledger_row
-- says what the ledger holds.
INSERT INTO bc_payment.simulator_ledger (payment_id, voided, voided_at)
VALUES (%(payment_id)s, true, now())
    ON CONFLICT (payment_id) DO NOTHING
RETURNING payment_id;

-- name: simulator_ledger_row
-- The ledger's row for a payment id, read after an insert found one there:
-- a statement of its own, so that its snapshot sees a row committed while
-- the insert waited on it.
SELECT voided, succeeded, transaction_id, error_code, error_message, failure_reason, response
  FROM bc_payment.simulator_ledger
 WHERE payment_id = %(payment_id)s;

-- name: simulator_refund
-- The simulated processor's refund, under a lock on the payment id that the
-- payment's other refunds and refund lookups take (two refunds of one
-- payment must not both count the same rest): refused when it holds no
-- succeeded charge for
-- the payment, or when the refund would take the payment's refunds past
-- that charge (as a processor refuses them), else with the test amount's
-- code when there is one (error_code); never taken for a refund id a lookup
-- voided; the first answer stays.
SELECT pg_advisory_xact_lock(hashtextextended(%(payment_id)s::text, 7296368));
INSERT INTO bc_payment.simulator_refunds (
    refund_id, payment_id, amount, currency, succeeded, transaction_id, error_code)
SELECT %(refund_id)s, %(payment_id)s, %(amount)s, %(currency)s, verdict.code IS NULL,
       CASE WHEN verdict.code IS NULL THEN %(transaction_id)s END, verdict.code
  FROM (SELECT CASE
                 WHEN charge.amount IS NULL THEN 'CHARGE_NOT_FOUND'
                 WHEN charge.amount - charge.refunded < %(amount)s THEN 'AMOUNT_EXCEEDS_CHARGE'
                 ELSE %(error_code)s
               END AS code
          FROM (SELECT (SELECT c.amount FROM bc_payment.simulator_ledger c
                         WHERE c.payment_id = %(payment_id)s AND NOT c.voided AND c.succeeded) AS amount,
                       (SELECT coalesce(sum(r.amount), 0) FROM bc_payment.simulator_refunds r
                         WHERE r.payment_id = %(payment_id)s AND r.succeeded) AS refunded) charge) verdict
 WHERE NOT EXISTS (SELECT 1 FROM bc_payment.simulator_refund_voids WHERE refund_id = %(refund_id)s)
    ON CONFLICT (refund_id) DO NOTHING;
-- taken_now: this call took the refund (now() is the transaction's start).
SELECT r.succeeded, r.transaction_id, r.error_code, r.refunded_at = now() AS taken_now
  FROM bc_payment.simulator_refunds r WHERE r.refund_id = %(refund_id)s;

-- name: simulator_refund_lookup
-- What the simulated processor knows of a refund; with none, the refund id
-- is voided first, so a refund still on its way is refused.
SELECT pg_advisory_xact_lock(hashtextextended(%(payment_id)s::text, 7296368));
INSERT INTO bc_payment.simulator_refund_voids (refund_id)
SELECT %(refund_id)s
 WHERE NOT EXISTS (SELECT 1 FROM bc_payment.simulator_refunds WHERE refund_id = %(refund_id)s)
    ON CONFLICT (refund_id) DO NOTHING;
SELECT r.succeeded, r.transaction_id, r.error_code, false AS taken_now
  FROM bc_payment.simulator_refunds r WHERE r.refund_id = %(refund_id)s;
