-- 024: the event feed's catalogue and its commit order (issue 20).
--
-- One catalogue of event types: the names the CRM reads (GET /v1/events,
-- later the webhooks). events.kind must be one of them, so a type outside
-- the catalogue cannot be written, let alone reach the feed. A later
-- feature (tracking: message.opened, link.clicked) adds its rows here in
-- its own migration.
CREATE TABLE event_types (
    type text PRIMARY KEY CHECK (type ~ '^[a-z_]+\.[a-z_]+$')
);
INSERT INTO event_types (type) VALUES
    ('contact.created'), ('contact.updated'), ('contact.erased'), ('contact.unsubscribed'),
    ('enrollment.created'), ('enrollment.paused'), ('enrollment.resumed'), ('enrollment.held'),
    ('enrollment.completed'), ('enrollment.stopped'),
    ('message.sent'), ('message.deferred'), ('message.bounced'), ('message.unknown'),
    ('reply.received'), ('auto_reply.received'),
    ('account.paused'), ('account.resumed'),
    ('sequence.applied'), ('mailbox.uidvalidity_changed'), ('webhook.disabled');

-- The stored rows under the catalogue's names: every bounce is
-- message.bounced with data.bounce.kind (hard, soft or block; the SMTP-time
-- hard bounce's "hard": true becomes that), an unsubscribe request found
-- in a reply is contact.unsubscribed from source "reply".
UPDATE events SET kind = 'reply.received' WHERE kind = 'reply.detected';
UPDATE events SET kind = 'auto_reply.received' WHERE kind = 'auto_reply.detected';
UPDATE events SET kind = 'contact.unsubscribed', data = data || '{"source": "reply"}'
 WHERE kind = 'unsubscribe.detected';
UPDATE events
   SET data = (data - 'hard')
              || jsonb_build_object('bounce', jsonb_build_object('kind', CASE kind
                     WHEN 'bounce.soft' THEN 'soft' WHEN 'message.soft_bounce' THEN 'soft'
                     WHEN 'bounce.block' THEN 'block' WHEN 'message.blocked' THEN 'block'
                     ELSE 'hard' END)),
       kind = 'message.bounced'
 WHERE kind IN ('bounce.hard', 'bounce.soft', 'bounce.block', 'message.soft_bounce', 'message.blocked',
                'message.bounced');

ALTER TABLE events ADD CONSTRAINT events_kind_catalogued FOREIGN KEY (kind) REFERENCES event_types (type);

-- Commit order. Ids come from a sequence, taken before commit: a
-- transaction holding id 10 can commit after the one holding 11, so a
-- reader paging by id would pass 10 by. The writing transaction's id
-- (xid8: 64-bit, never wraps) orders what the feed may hand out:
-- relance_api_events_list (api_events.sql) explains why. Rows already
-- stored committed long ago: they get xid 1, before any real one, in id
-- order. (A constant default adds the column without rewriting the table;
-- the writers' default comes after.)
ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT '1';
ALTER TABLE events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX events_xid_id ON events (xid, id);
