-- stats: what `relance stats` reports, from the messages and the event
-- feed.
--
-- Every observable thing that happens (a sequence applied, a message sent,
-- a reply detected, an account paused) is one row of events: the feed that
-- `relance stats` and the CRM webhooks read. Append-only; written by the
-- functions of the other files. (Its shape is in events.sql, with how its
-- rows are written.)

-- `relance stats`: per step and A/B variant of a sequence (all its
-- versions; step NULL is the total), the messages sent (with 'unknown',
-- which may have gone, and 'bounced', which were tried) and how many of
-- them got a reply, an auto-reply, a hard bounce (at SMTP time or as a
-- DSN) or an unsubscribe request, from the detection events (and, for
-- those retention deleted, what it kept of them: stats_hits). p_since
-- keeps the messages sent from then on; their replies count whenever
-- they came. Raises no_data_found for an unknown sequence.
--
-- Opens and clicks (tracking.sql's hits) count messages too: opened and
-- clicked, those with at least one hit not suspected of being a machine's
-- (human); opened_raw and clicked_raw, those with any hit. Hits stay when
-- their message is pruned (only their user agent and URL go), so these
-- figures do not move with retention either.
CREATE OR REPLACE FUNCTION relance_stats(p_sequence text, p_since timestamptz)
RETURNS TABLE (step text, step_position int, variant int, sent bigint, replied bigint, auto_replied bigint,
               bounced bigint, unsubscribed bigint, opened bigint, clicked bigint, opened_raw bigint,
               clicked_raw bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM 1 FROM sequences WHERE name = p_sequence;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no sequence named %', p_sequence USING ERRCODE = 'no_data_found',
              HINT = 'relance sequences list shows what exists';
    END IF;
    RETURN QUERY
    WITH hit AS (
        SELECT x.message_id, bool_or(x.replied) AS replied, bool_or(x.auto_replied) AS auto_replied,
               bool_or(x.bounced) AS bounced, bool_or(x.unsubscribed) AS unsubscribed
          FROM (SELECT v.data->>'message_id' AS message_id,
                       v.kind = 'reply.received' AS replied,
                       v.kind = 'auto_reply.received' AS auto_replied,
                       v.kind = 'message.bounced' AND v.data->'bounce'->>'kind' = 'hard' AS bounced,
                       v.kind = 'contact.unsubscribed' AS unsubscribed
                  FROM events v
                 WHERE v.kind IN ('reply.received', 'auto_reply.received', 'message.bounced', 'contact.unsubscribed')
                   AND v.data->>'sequence' = p_sequence
                -- what retention kept of the events it deleted: relance_retention_prune
                -- folds them as the lines above read them; change both together
                UNION ALL
                SELECT k.message_id, k.replied, k.auto_replied, k.bounced, k.unsubscribed
                  FROM stats_hits k
                 WHERE k.sequence = p_sequence) x
         GROUP BY 1
    )
    SELECT m.step_id, min(m.position), m.variant, count(*),
           count(*) FILTER (WHERE h.replied), count(*) FILTER (WHERE h.auto_replied),
           count(*) FILTER (WHERE m.state = 'bounced' OR h.bounced), count(*) FILTER (WHERE h.unsubscribed),
           count(*) FILTER (WHERE t.opened), count(*) FILTER (WHERE t.clicked),
           count(*) FILTER (WHERE t.opened_raw), count(*) FILTER (WHERE t.clicked_raw)
      FROM messages m
      JOIN enrollments e ON e.id = m.enrollment_id
      JOIN sequences s ON s.id = e.sequence_id
      LEFT JOIN hit h ON h.message_id = m.message_id
      LEFT JOIN LATERAL (
          SELECT bool_or(k.kind = 'open' AND NOT k.bot_suspected) AS opened,
                 bool_or(k.kind = 'click' AND NOT k.bot_suspected) AS clicked,
                 bool_or(k.kind = 'open') AS opened_raw, bool_or(k.kind = 'click') AS clicked_raw
            FROM tracking_hits k WHERE k.message_id = m.id) t ON true
     WHERE s.name = p_sequence AND m.state IN ('sent', 'unknown', 'bounced')
       AND (p_since IS NULL OR coalesce(m.sent_at, m.created_at) >= p_since)
     GROUP BY GROUPING SETS ((m.step_id, m.variant), ())
     ORDER BY GROUPING(m.step_id), min(m.position), m.step_id, m.variant NULLS FIRST;
END $$;

-- The same as one JSON document, for `relance stats --json`:
-- {"sequence", "since", "steps": [{"step", "position", "variant", "sent",
-- "replied", "auto_replied", "bounced", "unsubscribed", "reply_rate",
-- "opened", "clicked", "opened_raw", "clicked_raw", "open_rate",
-- "click_rate"}], "total": {...}}; each rate is over sent (null when
-- nothing was sent), open and click rates on the human counts.
CREATE OR REPLACE FUNCTION relance_stats_json(p_sequence text, p_since date) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT s.step, jsonb_build_object('step', s.step, 'position', s.step_position, 'variant', s.variant,
                                          'sent', s.sent, 'replied', s.replied, 'auto_replied', s.auto_replied,
                                          'bounced', s.bounced, 'unsubscribed', s.unsubscribed,
                                          'reply_rate', round(s.replied::numeric / nullif(s.sent, 0), 4),
                                          'opened', s.opened, 'clicked', s.clicked, 'opened_raw', s.opened_raw,
                                          'clicked_raw', s.clicked_raw,
                                          'open_rate', round(s.opened::numeric / nullif(s.sent, 0), 4),
                                          'click_rate', round(s.clicked::numeric / nullif(s.sent, 0), 4)) AS j,
               row_number() OVER () AS n
          FROM relance_stats(p_sequence, p_since::timestamp AT TIME ZONE 'UTC') s
    )
    SELECT jsonb_build_object(
               'sequence', p_sequence, 'since', p_since,
               'steps', coalesce((SELECT jsonb_agg(j ORDER BY n) FROM r WHERE step IS NOT NULL), '[]'::jsonb),
               'total', (SELECT j - 'step' - 'position' - 'variant' FROM r WHERE step IS NULL))
$$;
