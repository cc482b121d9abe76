-- metrics: the figures GET /metrics reads from the database when scraped
-- (service/metrics.c caches them for a few seconds, so a tight scrape
-- loop costs one call every few seconds whatever its rate). The in-process
-- figures (sends, claims, latencies) are the service's own; these are the
-- ones only the database knows, shared by every replica.

-- Rows (metric, label, value), grouped by metric:
--   due_messages       -     active enrollments whose next step is due at
--                            p_now (the due-now queue, enrollments_due)
--   enrollments        state every state, 0 included, so a series never
--                            vanishes when its count drops to nothing
--   sends_after_reply  -     messages sent after their enrollment was
--                            stopped by a reply (its own or a colleague's:
--                            state 'replied'); must stay 0. Counted by the
--                            outcome's time, so a body already on the wire
--                            when the reply was recorded counts too.
--   webhook_pending    webhook every enabled endpoint's deliveries not yet
--                            made (pending), 0 included
--   webhook_lag        webhook how long ago the event of its first pending
--                            delivery happened: the outbox lag (0: none)
CREATE OR REPLACE FUNCTION relance_metrics(p_now timestamptz)
RETURNS TABLE (metric text, label text, value double precision)
LANGUAGE sql STABLE AS $$
    SELECT 'due_messages', NULL::text, count(*)::double precision
      FROM enrollments WHERE state = 'active' AND next_send_at <= p_now
    UNION ALL
    (SELECT 'enrollments', s.state, coalesce(c.n, 0)::double precision
       FROM unnest(ARRAY['active', 'paused', 'held', 'replied', 'bounced', 'unsubscribed', 'completed', 'failed',
                         'stopped']) WITH ORDINALITY AS s(state, i)
       LEFT JOIN (SELECT e.state, count(*) AS n FROM enrollments e GROUP BY e.state) c ON c.state = s.state
      ORDER BY s.i)
    UNION ALL
    SELECT 'sends_after_reply', NULL, count(*)::double precision
      FROM enrollments e
      JOIN messages m ON m.enrollment_id = e.id
     WHERE e.state = 'replied' AND m.state = 'sent' AND m.sent_at > e.state_changed_at
    UNION ALL
    (SELECT 'webhook_pending', w.id::text,
            (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'pending')::double precision
       FROM webhooks w WHERE w.enabled ORDER BY w.id)
    UNION ALL
    (SELECT 'webhook_lag', w.id::text,
            coalesce(greatest(extract(epoch FROM p_now - (
                SELECT e.occurred_at FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
                 WHERE d.webhook_id = w.id AND d.state = 'pending' ORDER BY d.next_at, d.id LIMIT 1)), 0), 0)
       FROM webhooks w WHERE w.enabled ORDER BY w.id)
$$;
