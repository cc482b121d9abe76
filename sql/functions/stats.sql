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
-- DSN) or an unsubscribe request, from the detection events. p_since
-- keeps the messages sent from then on; their replies count whenever
-- they came. Raises no_data_found for an unknown sequence.
CREATE OR REPLACE FUNCTION relance_stats(p_sequence text, p_since timestamptz)
RETURNS TABLE (step text, step_position int, variant int, sent bigint, replied bigint, auto_replied bigint,
               bounced bigint, unsubscribed bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM 1 FROM sequences WHERE name = p_sequence;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no sequence named %', p_sequence USING ERRCODE = 'no_data_found',
              HINT = 'relance sequences list shows what exists';
    END IF;
    RETURN QUERY
    WITH hit AS (
        SELECT v.data->>'message_id' AS message_id,
               bool_or(v.kind = 'reply.received') AS replied,
               bool_or(v.kind = 'auto_reply.received') AS auto_replied,
               bool_or(v.kind = 'message.bounced' AND v.data->'bounce'->>'kind' = 'hard') AS bounced,
               bool_or(v.kind = 'contact.unsubscribed') AS unsubscribed
          FROM events v
         WHERE v.kind IN ('reply.received', 'auto_reply.received', 'message.bounced', 'contact.unsubscribed')
           AND v.data->>'sequence' = p_sequence
         GROUP BY 1
    )
    SELECT m.step_id, min(m.position), m.variant, count(*),
           count(*) FILTER (WHERE h.replied), count(*) FILTER (WHERE h.auto_replied),
           count(*) FILTER (WHERE m.state = 'bounced' OR h.bounced), count(*) FILTER (WHERE h.unsubscribed)
      FROM messages m
      JOIN enrollments e ON e.id = m.enrollment_id
      JOIN sequences s ON s.id = e.sequence_id
      LEFT JOIN hit h ON h.message_id = m.message_id
     WHERE s.name = p_sequence AND m.state IN ('sent', 'unknown', 'bounced')
       AND (p_since IS NULL OR coalesce(m.sent_at, m.created_at) >= p_since)
     GROUP BY GROUPING SETS ((m.step_id, m.variant), ())
     ORDER BY GROUPING(m.step_id), min(m.position), m.step_id, m.variant NULLS FIRST;
END $$;

-- The same as one JSON document, for `relance stats --json`:
-- {"sequence", "since", "steps": [{"step", "position", "variant", "sent",
-- "replied", "auto_replied", "bounced", "unsubscribed", "reply_rate"}],
-- "total": {...}}; reply_rate is replied / sent (null when nothing was sent).
CREATE OR REPLACE FUNCTION relance_stats_json(p_sequence text, p_since date) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT s.step, jsonb_build_object('step', s.step, 'position', s.step_position, 'variant', s.variant,
                                          'sent', s.sent, 'replied', s.replied, 'auto_replied', s.auto_replied,
                                          'bounced', s.bounced, 'unsubscribed', s.unsubscribed,
                                          'reply_rate', round(s.replied::numeric / nullif(s.sent, 0), 4)) AS j,
               row_number() OVER () AS n
          FROM relance_stats(p_sequence, p_since::timestamp AT TIME ZONE 'UTC') s
    )
    SELECT jsonb_build_object(
               'sequence', p_sequence, 'since', p_since,
               'steps', coalesce((SELECT jsonb_agg(j ORDER BY n) FROM r WHERE step IS NOT NULL), '[]'::jsonb),
               'total', (SELECT j - 'step' - 'position' - 'variant' FROM r WHERE step IS NULL))
$$;
