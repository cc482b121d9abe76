-- Retention of personal data (configuration `retention:`): what relance
-- no longer needs is pruned in small batches, each call one short
-- transaction, so pruning never holds many locks nor a long snapshot.
--
--   events past retention.events: deleted. What `relance stats` reads of
--     them (replied, auto-replied, hard bounce, unsubscribed: per message)
--     is folded into stats_hits first, so the figures stay the same.
--   messages past retention.messages: the row stays (counts, state,
--     times, enrollment, step, variant, its Message-ID, which relance made
--     and which names no person but matches late bounces and replies);
--     recipient becomes 'pruned@pruned.invalid', sender, subject and the
--     server's reply (it may quote the address) become NULL; its tracking
--     hits keep their kind, time and verdict (the stats) but lose the user
--     agent and the URL (a personalised link may name the person).
--   inbound_messages past retention.inbound: the row stays (kind, effect,
--     what it matched); sender becomes 'pruned@pruned.invalid', its
--     Message-ID (written by the prospect's mail client, it may carry
--     their name or host) and effect_reason (it may quote the address)
--     NULL. The place index (account, folder, uidvalidity, uid) still
--     dedupes it; a copy read again after a UIDVALIDITY change months
--     later matches an enrollment long ended and changes no count (stats
--     count a message once).
--
-- What is still needed is never pruned: the messages of a live enrollment
-- (active, paused, held) keep everything, since its follow-ups thread on
-- the first message (In-Reply-To/References from message_id, "Re: " +
-- its subject: relance_claim's first_subject) and a late bounce is matched
-- by recipient; messages still in flight ('sending', 'deferred') too; and
-- inbound messages whose effect is still 'pending'. An ended enrollment
-- (replied, bounced, unsubscribed, completed, failed, stopped) never sends
-- again, so its messages go once they are old enough.

-- messages.pruned_at and inbound_messages.pruned_at (NULL: not pruned)
-- are in claim.sql's and inbound.sql's table shapes. Today's table of
-- what stats keep of deleted events (sql/schema.sql holds every index):
--
-- TABLE stats_hits (
--     message_id   text    PRIMARY KEY          -- messages.message_id: relance's own
--     sequence     text    NOT NULL             -- the events' data->>'sequence'
--     replied      boolean NOT NULL DEFAULT false
--     auto_replied boolean NOT NULL DEFAULT false
--     bounced      boolean NOT NULL DEFAULT false -- hard
--     unsubscribed boolean NOT NULL DEFAULT false
-- )

-- One batch: at most p_limit rows of each kind pruned, as of p_now, for
-- retentions in seconds (0: kept forever). events, messages, inbound: how
-- many this call pruned; more: whether a kind filled its batch (call
-- again); busy: another session is pruning (advisory lock), nothing done.
CREATE OR REPLACE FUNCTION relance_retention_prune(p_now timestamptz, p_events bigint, p_messages bigint,
                                                   p_inbound bigint, p_limit int)
RETURNS TABLE (events int, messages int, inbound int, more boolean, busy boolean)
LANGUAGE plpgsql
-- housekeeping waits for nobody: a batch that meets a lock gives up (an
-- error the round logs) and the next round tries again
SET lock_timeout = '2s'
AS $$
DECLARE
    v_events int := 0;
    v_messages int := 0;
    v_inbound int := 0;
    v_noted int := 0;
BEGIN
    -- one pruner at a time across replicas: the others skip this round
    IF NOT pg_try_advisory_xact_lock(hashtext('relance_retention_prune')) THEN
        RETURN QUERY SELECT 0, 0, 0, false, true;
        RETURN;
    END IF;
    IF p_events > 0 THEN
        WITH doomed AS (
            SELECT v.id FROM events v
             WHERE v.occurred_at < p_now - make_interval(secs => p_events)
             ORDER BY v.occurred_at
             LIMIT p_limit
               FOR UPDATE SKIP LOCKED
        ), gone AS (
            DELETE FROM events v USING doomed d WHERE v.id = d.id RETURNING v.kind, v.data
        ), kept AS (
            INSERT INTO stats_hits AS h (message_id, sequence, replied, auto_replied, bounced, unsubscribed)
            SELECT g.data->>'message_id', min(g.data->>'sequence'),
                   bool_or(g.kind = 'reply.received'), bool_or(g.kind = 'auto_reply.received'),
                   coalesce(bool_or(g.kind = 'message.bounced' AND g.data->'bounce'->>'kind' = 'hard'), false),
                   bool_or(g.kind = 'contact.unsubscribed')
              FROM gone g
             WHERE g.kind IN ('reply.received', 'auto_reply.received', 'message.bounced', 'contact.unsubscribed')
               AND g.data->>'message_id' IS NOT NULL AND g.data->>'sequence' IS NOT NULL
             GROUP BY 1
            ON CONFLICT (message_id) DO UPDATE
               SET replied = h.replied OR excluded.replied, auto_replied = h.auto_replied OR excluded.auto_replied,
                   bounced = h.bounced OR excluded.bounced, unsubscribed = h.unsubscribed OR excluded.unsubscribed
        )
        SELECT count(*) INTO v_events FROM gone;
        -- the delivered webhooks' notes, which have no foreign key to go
        -- with their event: by their own time, which is never before it
        DELETE FROM webhook_delivered l
         WHERE l.ctid = ANY (ARRAY(SELECT x.ctid FROM webhook_delivered x
                                    WHERE x.delivered_at < p_now - make_interval(secs => p_events)
                                    ORDER BY x.delivered_at LIMIT p_limit));
        GET DIAGNOSTICS v_noted = ROW_COUNT;
    END IF;
    IF p_messages > 0 THEN
        WITH doomed AS (
            SELECT m.id FROM messages m
             WHERE m.pruned_at IS NULL AND m.created_at < p_now - make_interval(secs => p_messages)
               AND m.state NOT IN ('sending', 'deferred')
               AND NOT EXISTS (SELECT 1 FROM enrollments e
                                WHERE e.id = m.enrollment_id AND e.state IN ('active', 'paused', 'held'))
             ORDER BY m.created_at
             LIMIT p_limit
               FOR UPDATE OF m SKIP LOCKED
        ), done AS (
            UPDATE messages m SET recipient = 'pruned@pruned.invalid', sender = NULL, subject = NULL, reply = NULL,
                                  pruned_at = p_now
              FROM doomed d WHERE m.id = d.id
            RETURNING 1
        ), hits AS (
            UPDATE tracking_hits h SET user_agent = NULL, url = NULL
              FROM doomed d WHERE h.message_id = d.id AND (h.user_agent IS NOT NULL OR h.url IS NOT NULL)
        )
        SELECT count(*) INTO v_messages FROM done;
    END IF;
    IF p_inbound > 0 THEN
        WITH doomed AS (
            SELECT i.id FROM inbound_messages i
             WHERE i.pruned_at IS NULL AND i.detected_at < p_now - make_interval(secs => p_inbound)
               AND i.effect <> 'pending'
             ORDER BY i.detected_at
             LIMIT p_limit
               FOR UPDATE SKIP LOCKED
        ), done AS (
            UPDATE inbound_messages i SET sender = 'pruned@pruned.invalid', message_id = NULL, effect_reason = NULL,
                                          pruned_at = p_now
              FROM doomed d WHERE i.id = d.id
            RETURNING 1
        )
        SELECT count(*) INTO v_inbound FROM done;
    END IF;
    RETURN QUERY SELECT v_events, v_messages, v_inbound,
                        v_events >= p_limit OR v_noted >= p_limit OR v_messages >= p_limit OR v_inbound >= p_limit,
                        false;
END $$;
