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
