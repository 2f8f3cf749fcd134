-- Named queries of the simulated payment processor's ledger, loaded once by
-- payment/gateways/simulator.py: the processor's own records, apart from the
-- service's (sql/queries.sql). Each starts with a `-- name:` line;
-- parameters are psycopg named placeholders.

-- name: simulator_charge
-- One round trip, one implicit transaction (several statements in one simple
-- query): the lock on the payment id orders a charge against a void of the
-- same payment; the charge is taken unless voided, and the first one stays.
SELECT pg_advisory_xact_lock(hashtextextended(%(payment_id)s::text, 7296368));
INSERT INTO bc_payment.simulator_charges (
    payment_id, order_id, amount, currency, succeeded, transaction_id,
    error_code, error_message, failure_reason, response)
SELECT %(payment_id)s, %(order_id)s, %(amount)s, %(currency)s, %(succeeded)s, %(transaction_id)s,
       %(error_code)s, %(error_message)s, %(failure_reason)s, %(response)s
 WHERE NOT EXISTS (SELECT 1 FROM bc_payment.simulator_voids WHERE payment_id = %(payment_id)s)
    ON CONFLICT (payment_id) DO NOTHING;
-- taken_now: this call took the charge (now() is the transaction's start,
-- the charged_at of a row inserted by it).
SELECT c.succeeded, c.transaction_id, c.error_code, c.error_message, c.failure_reason, c.response,
       c.charged_at = now() AS taken_now
  FROM bc_payment.simulator_charges c WHERE c.payment_id = %(payment_id)s;

-- name: simulator_lookup
-- What the simulated processor knows of a payment; with no charge, the
-- payment id is voided first, so a charge still on its way is refused.
SELECT pg_advisory_xact_lock(hashtextextended(%(payment_id)s::text, 7296368));
INSERT INTO bc_payment.simulator_voids (payment_id)
SELECT %(payment_id)s
 WHERE NOT EXISTS (SELECT 1 FROM bc_payment.simulator_charges WHERE payment_id = %(payment_id)s)
    ON CONFLICT (payment_id) DO NOTHING;
SELECT c.succeeded, c.transaction_id, c.error_code, c.error_message, c.failure_reason, c.response,
       false AS taken_now
  FROM bc_payment.simulator_charges c WHERE c.payment_id = %(payment_id)s;

-- name: simulator_refund
-- The simulated processor's refund, under the lock its charge and lookups
-- of the same payment take: refused when it holds no succeeded charge for
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
          FROM (SELECT (SELECT c.amount FROM bc_payment.simulator_charges c
                         WHERE c.payment_id = %(payment_id)s AND c.succeeded) AS amount,
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
