-- 001: the foundation. The migration runner itself creates and owns
-- relance_migrations; this file holds what every later feature writes to.

-- Every observable thing that happens (a sequence applied, a message sent,
-- a reply detected, an account paused) is one row here: the feed that
-- `relance stats` and the CRM webhooks read. Append-only.
CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind ~ '^[a-z_.]+$'),
    occurred_at timestamptz NOT NULL,
    data        jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX events_kind_occurred_at ON events (kind, occurred_at);

-- Leases: one replica at a time owns a sender account or a watched
-- mailbox. A lease expires unless renewed, so a dead replica's work moves on.
CREATE TABLE leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);
