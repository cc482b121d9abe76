-- Retention of personal data (sql/functions/retention.sql prunes in
-- small batches): a message or inbound message past its retention keeps
-- its row for the counts and loses its addresses and subject; pruned_at
-- says when. The partial indexes find the next batch without reading
-- what was already pruned; events go whole, found by their age.
ALTER TABLE messages ADD COLUMN pruned_at timestamptz;
ALTER TABLE inbound_messages ADD COLUMN pruned_at timestamptz;
CREATE INDEX messages_unpruned ON messages (created_at) WHERE pruned_at IS NULL;
CREATE INDEX inbound_messages_unpruned ON inbound_messages (detected_at) WHERE pruned_at IS NULL;
CREATE INDEX events_occurred_at ON events (occurred_at);

-- What `relance stats` read from the events that retention deleted, one
-- row per message (its Message-ID, relance's own, names no person): the
-- stats count these beside the events still kept, so their figures do
-- not move when events go.
CREATE TABLE stats_hits (
    message_id   text PRIMARY KEY,
    sequence     text NOT NULL,
    replied      boolean NOT NULL DEFAULT false,
    auto_replied boolean NOT NULL DEFAULT false,
    bounced      boolean NOT NULL DEFAULT false,  -- hard
    unsubscribed boolean NOT NULL DEFAULT false
);
