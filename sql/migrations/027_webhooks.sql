-- 027: webhook endpoints and the deliveries owed to them (issue 20).
--
-- An endpoint is declared by the API (source 'api': its secret is kept
-- here, the signing needs it in clear) or by the configuration (source
-- 'config': named, its secret read from an env var or a file by each
-- replica and never stored). A delivery is one event owed to one
-- endpoint: written by the events' statement trigger in the transaction
-- that wrote the event (sql/functions/webhooks.sql), so an event is owed
-- exactly when it is committed. Deliveries go with their event (the
-- retention of events) and with their endpoint.
CREATE TABLE webhooks (
    id              bigserial   PRIMARY KEY,
    source          text        NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'config')),
    name            text        UNIQUE,             -- config endpoints: their name in the file
    url             text        NOT NULL,
    types           text[]      NOT NULL DEFAULT '{}', -- empty: every type
    description     text        NOT NULL DEFAULT '',
    enabled         boolean     NOT NULL DEFAULT true,
    secret          text,                           -- whsec_...; NULL for config endpoints
    previous_secret text,                           -- the one before a rotation, signed with too
    previous_until  timestamptz,                    -- until then
    failing_since   timestamptz,                    -- the first failure since the last success
    disabled_at     timestamptz,
    disabled_reason text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CHECK (source = 'config' OR secret IS NOT NULL),
    CHECK ((source = 'config') = (name IS NOT NULL))
);

CREATE TABLE webhook_deliveries (
    id            bigserial   PRIMARY KEY,
    webhook_id    bigint      NOT NULL REFERENCES webhooks ON DELETE CASCADE,
    event_id      bigint      NOT NULL REFERENCES events ON DELETE CASCADE,
    state         text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts      int         NOT NULL DEFAULT 0,
    next_at       timestamptz NOT NULL DEFAULT '-infinity', -- due from then (relance's clock)
    claimed_by    text,                                     -- the replica sending it now
    claimed_until timestamptz,                              -- real time: after it, anyone may
    last_status   int,                                      -- the HTTP status, NULL: none came
    last_error    text,
    last_at       timestamptz,
    delivered_at  timestamptz,
    UNIQUE (webhook_id, event_id)
) WITH (fillfactor = 70); -- room on each page: a claim (no indexed column) updates in place (HOT)
-- what the claim looks for, per endpoint, in order
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (webhook_id, next_at, id) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
