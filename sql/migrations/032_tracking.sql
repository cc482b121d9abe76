-- 032: open and click tracking (issue 21). One row per hit on a tracked
-- link (/c/TOKEN) or open image (/o/TOKEN.gif) of a message: a record,
-- never a state (no stop, branch or score reads it). Machine traffic is
-- kept and flagged, since link scanners and image proxies fetch on
-- delivery; the stats count human and raw hits apart. No IP address is
-- kept: it is personal data and nothing here needs it. The user agent
-- (truncated) and the URL go when the message is pruned (retention.sql).
CREATE TABLE tracking_hits (
    id            bigserial   PRIMARY KEY,
    message_id    bigint      NOT NULL REFERENCES messages,
    kind          text        NOT NULL CHECK (kind IN ('open', 'click')),
    url           text,                      -- a click's destination (NULL once pruned, and for opens)
    at            timestamptz NOT NULL,
    user_agent    text,                      -- at most 256 characters; NULL when absent or pruned
    bot_suspected boolean     NOT NULL,
    bot_reason    text,                      -- why, or why a proxy (botcheck.h); NULL when neither
    proxy         boolean     NOT NULL DEFAULT false -- a mail provider's image proxy opened it for a person
);
-- a message's hits: the stats, the click burst check, the pruning
CREATE INDEX tracking_hits_message ON tracking_hits (message_id, kind, at);

INSERT INTO event_types (type) VALUES ('message.opened'), ('link.clicked');

-- relance_stats gains the opens and clicks, human and raw: a new result
-- shape, so the function is made again by sql/functions/stats.sql
DROP FUNCTION IF EXISTS relance_stats(text, timestamptz);
