-- 034: a webhook delivery is claimed with a session advisory lock, and a
-- delivered one leaves the queue for webhook_delivered (issue 20).
--
-- A delivery was written three times: locked (FOR UPDATE), claimed
-- (claimed_by, claimed_until), then its outcome, a new row version that
-- also went into every index because its state changed. Now a replica
-- claims a delivery by holding a session advisory lock on its key
-- (relance_webhook_lock_key) on its background connection, which writes
-- nothing and is given back by PostgreSQL the moment that connection
-- ends: a replica that dies leaves no claim to lapse. A delivered one is
-- deleted (no index is touched) and noted in webhook_delivered, which
-- the listings read. Failures still update their row: they carry the
-- next attempt's time.
ALTER TABLE webhook_deliveries DROP COLUMN claimed_by, DROP COLUMN claimed_until;

-- A row per endpoint and cycle that delivered there, its deliveries in
-- arrays: one insert a cycle rather than one (and an index entry) a
-- delivery. No foreign keys: an endpoint's rows go with it
-- (relance_api_webhook_delete), retention prunes them by their time.
CREATE TABLE webhook_delivered (
    webhook_id   bigint      NOT NULL,
    delivered_at timestamptz NOT NULL, -- relance's clock
    last_id      bigint      NOT NULL, -- the greatest of ids
    ids          bigint[]    NOT NULL, -- the deliveries', as webhook_deliveries had them
    event_ids    bigint[]    NOT NULL,
    attempts     int[]       NOT NULL, -- the last one included
    statuses     int[]       NOT NULL  -- the 2xx each got
);
-- the listings: an endpoint's latest first
CREATE INDEX webhook_delivered_webhook ON webhook_delivered (webhook_id, last_id);
-- retention
CREATE INDEX webhook_delivered_at ON webhook_delivered (delivered_at);

INSERT INTO webhook_delivered (webhook_id, delivered_at, last_id, ids, event_ids, attempts, statuses)
SELECT webhook_id, coalesce(delivered_at, last_at, '-infinity'), max(id), array_agg(id ORDER BY id),
       array_agg(event_id ORDER BY id), array_agg(attempts ORDER BY id), array_agg(coalesce(last_status, 200) ORDER BY id)
  FROM webhook_deliveries WHERE state = 'delivered'
 GROUP BY webhook_id, coalesce(delivered_at, last_at, '-infinity');
DELETE FROM webhook_deliveries WHERE state = 'delivered';

DROP FUNCTION IF EXISTS relance_webhooks_release(text);
DROP FUNCTION IF EXISTS relance_webhooks_cycle(text, timestamptz, bigint[], int[], text[], bigint[], int[], int,
                                               interval);
DROP FUNCTION IF EXISTS relance_webhooks_record(text, timestamptz, bigint[], int[], text[]);
