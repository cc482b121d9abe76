-- api_events: the HTTP API's event feed, GET /v1/events
-- (service/api_events.c): JSON out, as (status int, body text) rows whose
-- problems carry no request_id (C adds it). The events are written by the
-- other files' functions, each in the transaction of the change it tells
-- (an outbox); event_types (migration 024) is the catalogue they must be
-- of.
--
-- Commit order. An event's id comes from a sequence before its
-- transaction commits, so ids are not commit-ordered: a writer holding id
-- 10 can commit after the one holding 11, and a reader that had paged past
-- 11 would never see 10. The feed orders by (xid, id) instead — xid being
-- the writing transaction's id — and hands out only events whose xid is
-- below the xmin of the reader's snapshot, the oldest transaction still
-- in flight. Why nothing is skipped:
--   - every xid below xmin belongs to a transaction that has ended, and
--     the snapshot sees all that committed: the rows below xmin are, in
--     this statement, all the rows there will ever be below it (a
--     rolled-back one is gone for good);
--   - a transaction still in flight, or one not yet begun, has (or will
--     get: xids are handed out in increasing order) an xid >= xmin, so
--     each of its events sorts after everything handed out so far;
--   - a cursor carries the last (xid, id) handed out, and the next page
--     takes what sorts after it: what was below xmin then is all before
--     it, what commits later is all after it.
-- So every event is handed out once, in a total order. The price: a long
-- transaction anywhere in the database holds the feed back until it
-- ends (a long writer of events must: it could still commit some).

-- An event as the API (and a webhook) shows it: {id, type, occurred_at,
-- data}, and seq, the contact's n-th event (events.sql), when it is about
-- a contact. (Columns, not the row type: a function taking a table's row
-- type moves the table up in sql/schema.sql's dump.)
CREATE OR REPLACE FUNCTION relance_api_event_json(p_id bigint, p_kind text, p_occurred_at timestamptz, p_data jsonb,
                                                  p_seq bigint DEFAULT NULL)
RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_seq IS NULL
                THEN json_build_object('id', p_id::text, 'type', p_kind,
                                       'occurred_at', relance_api_time(p_occurred_at), 'data', p_data)
                ELSE json_build_object('id', p_id::text, 'type', p_kind,
                                       'occurred_at', relance_api_time(p_occurred_at), 'seq', p_seq, 'data', p_data)
           END
$$;

-- GET /v1/events: one page of the feed after the cursor p_after (NULL:
-- from the start), of the types p_types (comma-separated catalogue names;
-- NULL: all). next is where to go on from, even on the last page for
-- now: the feed is polled with it (null only while there is nothing to
-- resume after). 400 for a cursor not of this feed or a type outside the
-- catalogue.
CREATE OR REPLACE FUNCTION relance_api_events_list(p_limit int, p_after text, p_types text)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_bad text := relance_api_cursor_problem('events', p_after);
    v_key text := relance_api_text_cursor_key('events', p_after);
    v_types text[] := string_to_array(p_types, ',');
    v_unknown text;
    v_xid xid8 := '0';
    v_id bigint := 0;
BEGIN
    IF v_bad IS NULL AND v_key IS NOT NULL THEN
        -- "xid:id"
        IF v_key ~ '^[0-9]{1,19}:[0-9]{1,18}$' THEN
            v_xid := split_part(v_key, ':', 1)::xid8;
            v_id := split_part(v_key, ':', 2)::bigint;
        ELSE
            v_bad := relance_api_problem(400, 'bad-request', 'Bad request', 'after is not a cursor this list gave');
        END IF;
    END IF;
    IF v_bad IS NOT NULL THEN
        RETURN QUERY SELECT 400, v_bad;
        RETURN;
    END IF;
    SELECT t INTO v_unknown FROM unnest(v_types) t WHERE NOT EXISTS (SELECT 1 FROM event_types c WHERE c.type = t)
     LIMIT 1;
    IF v_unknown IS NOT NULL THEN
        RETURN QUERY SELECT 400, relance_api_problem(400, 'bad-request', 'Bad request',
                                                     format('types: %s is not an event type', v_unknown));
        RETURN;
    END IF;
    -- events_xid_id serves the WHERE and the ORDER BY
    RETURN QUERY
    SELECT 200, json_build_object(
               'data', coalesce(array_to_json(array_agg(q.doc ORDER BY q.xid, q.id)), '[]'),
               'next', coalesce(relance_api_text_cursor('events', (array_agg(q.xid::text || ':' || q.id
                                                                             ORDER BY q.xid DESC, q.id DESC))[1]),
                                p_after))::text
      FROM (SELECT e.xid, e.id, relance_api_event_json(e.id, e.kind, e.occurred_at, e.data, e.seq) AS doc
              FROM events e
             WHERE (e.xid, e.id) > (v_xid, v_id)
               AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
               AND (v_types IS NULL OR e.kind = ANY (v_types))
             ORDER BY e.xid, e.id LIMIT p_limit) q;
END $$;
