-- The simulated processor's charges and voids in one ledger: one row per
-- payment id, either the charge it took or the void a lookup left, so that
-- the primary key alone decides between a charge and a void of the same
-- payment (INSERT ... ON CONFLICT DO NOTHING: the first writer wins), with
-- no advisory lock and no read before the write (sql/simulator.sql).
--
-- simulator_charges and simulator_voids become views of it with the same
-- names and columns, so that readers and operators see what they saw.

ALTER TABLE bc_payment.simulator_charges RENAME TO simulator_charges_0004;
ALTER TABLE bc_payment.simulator_voids RENAME TO simulator_voids_0004;

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
    CONSTRAINT simulator_ledger_charge_complete CHECK (
        voided OR (num_nulls(order_id, amount, currency, succeeded, response, charged_at) = 0
                   AND voided_at IS NULL)),
    CONSTRAINT simulator_ledger_void_bare CHECK (
        NOT voided OR (voided_at IS NOT NULL
                       AND num_nonnulls(order_id, amount, currency, succeeded, transaction_id, error_code,
                                        error_message, failure_reason, response, charged_at) = 0))
);

INSERT INTO bc_payment.simulator_ledger (
    payment_id, order_id, amount, currency, succeeded, transaction_id,
    error_code, error_message, failure_reason, response, charged_at)
SELECT payment_id, order_id, amount, currency, succeeded, transaction_id,
       error_code, error_message, failure_reason, response, charged_at
  FROM bc_payment.simulator_charges_0004;

-- The lock kept a payment id out of both tables; one found in both (written
-- there by hand) keeps its charge: that is money the processor took.
INSERT INTO bc_payment.simulator_ledger (payment_id, voided, voided_at)
SELECT payment_id, true, voided_at
  FROM bc_payment.simulator_voids_0004
    ON CONFLICT (payment_id) DO NOTHING;

CREATE VIEW bc_payment.simulator_charges AS
SELECT payment_id, order_id, amount, currency, succeeded, transaction_id,
       error_code, error_message, failure_reason, response, charged_at
  FROM bc_payment.simulator_ledger
 WHERE NOT voided;

-- A row inserted through the view (by hand, or by a test) is a charge taken now.
ALTER VIEW bc_payment.simulator_charges ALTER COLUMN charged_at SET DEFAULT now();

-- Read it only: a row inserted through it could not set `voided`, and the
-- ledger's checks refuse it (a void is inserted into simulator_ledger).
CREATE VIEW bc_payment.simulator_voids AS
SELECT payment_id, voided_at
  FROM bc_payment.simulator_ledger
 WHERE voided;

-- Whoever could read or write the old tables can do the same with the views
-- of their names, and with the ledger behind them (the service's role, when
-- `migrate` is given one, is granted again at the end of the run anyway).
DO $$
DECLARE
    grant_ record;
BEGIN
    FOR grant_ IN
        SELECT DISTINCT target, acl.privilege_type, acl.is_grantable,
               CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(acl.grantee)) END
                   AS grantee
          FROM pg_class old
         CROSS JOIN LATERAL aclexplode(old.relacl) acl
         CROSS JOIN LATERAL (VALUES ('simulator_ledger'),
                                    (replace(old.relname, '_0004', ''))) AS targets (target)
         WHERE old.oid IN ('bc_payment.simulator_charges_0004'::regclass,
                           'bc_payment.simulator_voids_0004'::regclass)
           AND acl.grantee <> old.relowner
    LOOP
        EXECUTE format('GRANT %s ON bc_payment.%I TO %s%s', grant_.privilege_type, grant_.target, grant_.grantee,
                       CASE WHEN grant_.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;

DROP TABLE bc_payment.simulator_charges_0004, bc_payment.simulator_voids_0004;
