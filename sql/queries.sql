-- Named queries of the payment service, loaded once by payment/db/queries.py.
-- Each starts with a `-- name:` line; parameters are psycopg named placeholders.

-- name: find_succeeded_payment
SELECT * FROM bc_payment.payments
 WHERE order_id = %(order_id)s AND status = 'succeeded';

-- name: insert_pending_payment
-- The uniqueness guard: the conflict target is the partial unique index
-- payments_one_live_payment_per_order. No row back means another payment
-- for this order is in flight or has succeeded.
INSERT INTO bc_payment.payments (
    id, order_id, customer_id, reservation_id, amount, currency,
    payment_method, status, is_simulated)
VALUES (
    %(id)s, %(order_id)s, %(customer_id)s, %(reservation_id)s, %(amount)s,
    %(currency)s, %(payment_method)s, 'pending', %(is_simulated)s)
ON CONFLICT (order_id) WHERE status IN ('pending', 'succeeded') DO NOTHING
RETURNING *;

-- name: find_live_payment
SELECT * FROM bc_payment.payments
 WHERE order_id = %(order_id)s AND status IN ('pending', 'succeeded');

-- name: settle_payment
-- The one way a payment leaves pending: its outcome and its outbox event in
-- one statement, hence one implicit transaction and one round trip. The
-- event is inserted only for a payment the update found pending, and an
-- error in either (a lock or statement timeout, a duplicate event_id) undoes
-- both. No row back: the payment was no longer pending, nothing was written.
-- processed_at comes from the caller, which put the same instant in the
-- event's payload. earlier_unsent: an older event of the same order is still
-- unsent (the statement's snapshot does not see the row it inserts), so this
-- one must wait its turn in the outbox (commit order per orderId).
WITH settled AS (
    UPDATE bc_payment.payments
       SET status = %(status)s,
           transaction_id = %(transaction_id)s,
           error_code = %(error_code)s,
           error_message = %(error_message)s,
           failure_reason = %(failure_reason)s,
           simulated_response = %(simulated_response)s,
           processed_at = %(processed_at)s
     WHERE id = %(id)s AND status = 'pending'
    RETURNING *),
event AS (
    INSERT INTO bc_payment.outbox (event_id, payment_id, topic, event_key, event_type, payload)
    SELECT %(event_id)s, settled.id, %(topic)s, %(event_key)s, %(event_type)s, %(payload)s
      FROM settled)
SELECT settled.*,
       EXISTS (SELECT 1 FROM bc_payment.outbox earlier
                WHERE earlier.event_key = %(event_key)s AND earlier.sent_at IS NULL) AS earlier_unsent
  FROM settled;

-- name: mark_outbox_sent
-- A batch of confirmed events in one statement (payment/outbox/marker.py, or the
-- relay's claim); one that is already marked keeps its first sent_at.
UPDATE bc_payment.outbox SET sent_at = now()
 WHERE event_id = ANY(%(event_ids)s) AND sent_at IS NULL;

-- name: claim_unsent_events
-- Claimed by order key, so that events of one order leave in commit order
-- from one relay at a time, however many relays run. A key is taken by
-- locking its oldest unsent row (its head); a head another relay holds is
-- skipped, and the key's later rows are not heads, so the whole key is
-- skipped with it. Then every unsent row of the keys taken, in seq order,
-- up to the batch size: a key cut off keeps its unsent tail for a later
-- pass, still behind what was sent. Only row locks, released at commit: no
-- session state, so this holds behind a transaction-mode pooler too. Heads
-- wait out the grace period (the request may still be sending them); the
-- rows behind a head were left to the relay by their request, and go with it.
WITH heads AS (
    SELECT head.event_key
      FROM bc_payment.outbox head
     WHERE head.sent_at IS NULL
       AND head.created_at < now() - make_interval(secs => %(grace_s)s)
       AND NOT EXISTS (SELECT 1 FROM bc_payment.outbox earlier
                        WHERE earlier.event_key = head.event_key
                          AND earlier.sent_at IS NULL AND earlier.seq < head.seq)
     ORDER BY head.seq
     LIMIT %(limit)s
       FOR UPDATE OF head SKIP LOCKED)
SELECT event_id, payment_id, topic, event_key, event_type, payload
  FROM bc_payment.outbox
 WHERE sent_at IS NULL AND event_key IN (SELECT event_key FROM heads)
 ORDER BY seq
 LIMIT %(limit)s
   FOR UPDATE;

-- name: count_attempt
UPDATE bc_payment.outbox SET attempts = attempts + 1
 WHERE event_id = ANY(%(event_ids)s);

-- name: delete_sent_events
-- One bounded batch of sent events past retention, oldest first (index
-- outbox_sent_at), so that each statement is short whatever the backlog.
-- SKIP LOCKED: relays cleaning at the same moment take different rows. An
-- array, not IN: the rows are then found by primary key whatever the planner
-- guesses of the limit (a prepared statement's generic plan).
DELETE FROM bc_payment.outbox
 WHERE seq = ANY (ARRAY(SELECT seq FROM bc_payment.outbox
                         WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(secs => %(retention_s)s)
                         ORDER BY sent_at
                         LIMIT %(limit)s
                           FOR UPDATE SKIP LOCKED));

-- name: find_payment
SELECT * FROM bc_payment.payments WHERE id = %(id)s;

-- name: list_payments_for_order
-- Every attempt, newest first (index payments_by_order); the id breaks ties
-- so that the order never changes between two reads.
SELECT * FROM bc_payment.payments
 WHERE order_id = %(order_id)s
 ORDER BY created_at DESC, id DESC;

-- name: outbox_backlog
SELECT count(*) AS unsent,
       extract(epoch FROM now() - min(created_at))::float8 AS oldest_age_s
  FROM bc_payment.outbox
 WHERE sent_at IS NULL;

-- name: attach_gateway_reference
UPDATE bc_payment.payments SET gateway_reference = %(reference)s
 WHERE id = %(id)s AND status = 'pending'
RETURNING *;

-- name: claim_overdue_payments
-- Pending payments older than the request path could still be working on,
-- not already being asked about (lease) or waiting out a backoff. The lease
-- is taken in the same statement; SKIP LOCKED keeps two reconcilers apart.
WITH due AS (
    SELECT p.id FROM bc_payment.payments p
     WHERE p.status = 'pending'
       AND p.created_at < now() - make_interval(secs => %(older_than_s)s)
       AND NOT EXISTS (SELECT 1 FROM bc_payment.payment_checks c
                        WHERE c.payment_id = p.id AND c.next_check_at > now())
     ORDER BY p.created_at
     LIMIT %(limit)s
       FOR UPDATE OF p SKIP LOCKED)
INSERT INTO bc_payment.payment_checks AS c (payment_id, attempts, next_check_at)
SELECT id, 1, now() + make_interval(secs => %(lease_s)s) FROM due
    ON CONFLICT (payment_id) DO UPDATE
   SET attempts = c.attempts + 1, next_check_at = EXCLUDED.next_check_at
RETURNING payment_id, attempts;

-- name: find_pending_payments
SELECT * FROM bc_payment.payments WHERE id = ANY(%(ids)s) AND status = 'pending';

-- name: postpone_check
UPDATE bc_payment.payment_checks
   SET next_check_at = now() + make_interval(secs => %(after_s)s)
 WHERE payment_id = %(payment_id)s;

-- name: forget_check
DELETE FROM bc_payment.payment_checks WHERE payment_id = %(payment_id)s;

-- name: count_overdue_payments
SELECT count(*) FROM bc_payment.payments
 WHERE status = 'pending' AND created_at < now() - make_interval(secs => %(older_than_s)s);

-- name: remember_webhook_event
-- A row back: the event is new, and this call is the one to act on it.
INSERT INTO bc_payment.webhook_events (event_id) VALUES (%(event_id)s)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id;

-- name: forget_webhook_event
-- The event could not be acted on (the database failed midway): its next
-- delivery is to be acted on.
DELETE FROM bc_payment.webhook_events WHERE event_id = %(event_id)s;

-- name: delete_old_webhook_events
-- One bounded batch past retention, oldest first (index webhook_events_by_age).
DELETE FROM bc_payment.webhook_events
 WHERE event_id = ANY (ARRAY(SELECT event_id FROM bc_payment.webhook_events
                              WHERE received_at < now() - make_interval(secs => %(retention_s)s)
                              ORDER BY received_at
                              LIMIT %(limit)s
                                FOR UPDATE SKIP LOCKED));

-- name: find_refund_by_key
SELECT * FROM bc_payment.refunds WHERE idempotency_key = %(idempotency_key)s;

-- name: insert_pending_refund
-- The over-refund guard: a payment's pending and succeeded refunds never
-- add up to more than the payment. The first statement locks the payment's
-- row (NO KEY: the foreign keys of its outbox rows and refunds still only
-- share it); the second, which sums the refunds, starts after the lock is
-- had and so sees every refund committed by whoever held it before. In one
-- statement the sum would be read in the snapshot taken before the lock
-- wait, and two refunds could both pass (READ COMMITTED). Both statements go
-- in one round trip, one implicit transaction: the lock lasts until the row
-- is in. An absent amount asks for all that is left. No refund in the row
-- back: the payment is not succeeded (payment_status), the amount is not
-- within `refundable`, or the idempotency key is taken (ON CONFLICT).
SELECT 1 FROM bc_payment.payments WHERE id = %(payment_id)s FOR NO KEY UPDATE;
WITH payment AS (
    SELECT p.id, p.order_id, p.customer_id, p.currency, p.status,
           p.amount - (SELECT coalesce(sum(r.amount), 0) FROM bc_payment.refunds r
                        WHERE r.payment_id = p.id AND r.status IN ('pending', 'succeeded')) AS refundable
      FROM bc_payment.payments p
     WHERE p.id = %(payment_id)s),
asked AS (
    SELECT payment.*, coalesce(%(amount)s, payment.refundable) AS refund_amount FROM payment),
inserted AS (
    INSERT INTO bc_payment.refunds (
        id, payment_id, order_id, customer_id, amount, currency, reason, status, is_simulated,
        idempotency_key, request_fingerprint)
    SELECT %(id)s, asked.id, asked.order_id, asked.customer_id, asked.refund_amount, asked.currency,
           %(reason)s, 'pending', %(is_simulated)s, %(idempotency_key)s, %(fingerprint)s
      FROM asked
     WHERE asked.status = 'succeeded' AND asked.refund_amount > 0 AND asked.refund_amount <= asked.refundable
        ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING *)
SELECT asked.status AS payment_status, asked.refundable, inserted.*
  FROM asked LEFT JOIN inserted ON true;

-- name: find_refund
SELECT * FROM bc_payment.refunds WHERE id = %(id)s;

-- name: list_refunds_for_payment
-- Newest first (index refunds_by_payment); the id breaks ties.
SELECT * FROM bc_payment.refunds
 WHERE payment_id = %(payment_id)s
 ORDER BY created_at DESC, id DESC;

-- name: lock_payment_for_refund_outcome
-- Inside settle's transaction: the payment's row locked, as insert_pending_refund
-- locks it, then (a statement of its own, so a snapshot taken after the lock)
-- what its refunds already gave back: each refund's event says the payment's
-- total refunded, and two refunds settling at once must not both miss the other.
SELECT 1 FROM bc_payment.payments WHERE id = %(payment_id)s FOR NO KEY UPDATE;
SELECT coalesce(sum(amount), 0) FROM bc_payment.refunds
 WHERE payment_id = %(payment_id)s AND status = 'succeeded';

-- name: settle_refund
-- The one way a refund leaves pending: its outcome and its outbox event in
-- one statement, as settle_payment. No row back: the refund was no longer
-- pending, and nothing was written. earlier_unsent: an older event of the
-- same order is still unsent (the payment's own, for one).
WITH settled AS (
    UPDATE bc_payment.refunds
       SET status = %(status)s,
           transaction_id = %(transaction_id)s,
           error_code = %(error_code)s,
           error_message = %(error_message)s,
           processed_at = %(processed_at)s
     WHERE id = %(id)s AND status = 'pending'
    RETURNING *),
event AS (
    INSERT INTO bc_payment.outbox (event_id, payment_id, topic, event_key, event_type, payload)
    SELECT %(event_id)s, settled.payment_id, %(topic)s, %(event_key)s, %(event_type)s, %(payload)s
      FROM settled)
SELECT settled.*,
       EXISTS (SELECT 1 FROM bc_payment.outbox earlier
                WHERE earlier.event_key = %(event_key)s AND earlier.sent_at IS NULL) AS earlier_unsent
  FROM settled;

-- name: earlier_unsent_event
-- Whether an event committed before this one, for the same order, is still unsent.
SELECT EXISTS (SELECT 1 FROM bc_payment.outbox earlier
                WHERE earlier.event_key = %(event_key)s AND earlier.sent_at IS NULL
                  AND earlier.seq < (SELECT seq FROM bc_payment.outbox WHERE event_id = %(event_id)s));

-- name: claim_overdue_refunds
-- As claim_overdue_payments, for refunds.
WITH due AS (
    SELECT r.id FROM bc_payment.refunds r
     WHERE r.status = 'pending'
       AND r.created_at < now() - make_interval(secs => %(older_than_s)s)
       AND NOT EXISTS (SELECT 1 FROM bc_payment.refund_checks c
                        WHERE c.refund_id = r.id AND c.next_check_at > now())
     ORDER BY r.created_at
     LIMIT %(limit)s
       FOR UPDATE OF r SKIP LOCKED)
INSERT INTO bc_payment.refund_checks AS c (refund_id, attempts, next_check_at)
SELECT id, 1, now() + make_interval(secs => %(lease_s)s) FROM due
    ON CONFLICT (refund_id) DO UPDATE
   SET attempts = c.attempts + 1, next_check_at = EXCLUDED.next_check_at
RETURNING refund_id, attempts;

-- name: find_pending_refunds
SELECT * FROM bc_payment.refunds WHERE id = ANY(%(ids)s) AND status = 'pending';

-- name: postpone_refund_check
UPDATE bc_payment.refund_checks
   SET next_check_at = now() + make_interval(secs => %(after_s)s)
 WHERE refund_id = %(refund_id)s;

-- name: forget_refund_check
DELETE FROM bc_payment.refund_checks WHERE refund_id = %(refund_id)s;

-- name: count_overdue_refunds
SELECT count(*) FROM bc_payment.refunds
 WHERE status = 'pending' AND created_at < now() - make_interval(secs => %(older_than_s)s);
