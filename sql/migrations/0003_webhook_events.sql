-- The payment gateway's webhook events already handled, by the gateway's
-- own event id: a delivery repeated (Stripe retries an event for up to three
-- days, and may deliver one twice) is answered without being acted on
-- again. The relay deletes rows past their retention.

CREATE TABLE bc_payment.webhook_events (
    event_id    text        PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_events_by_age
    ON bc_payment.webhook_events (received_at);
