-- api_admin: the HTTP API's suppressions, accounts and messages
-- (service/api_admin.c): JSON out, as (status int, body text) rows whose
-- problems carry no request_id (C adds it). The writes are the command
-- line's own functions: relance_suppress_add and relance_suppress_remove
-- (contacts.sql), relance_account_pause_by_email,
-- relance_account_resume_by_email and relance_accounts_list
-- (accounts.sql); C has normalised every pattern with contact.c's rules
-- (contact_pattern_normalize) before it comes here.

-- ---- suppressions ---------------------------------------------------------

-- (Columns, not the row type: a function taking a table's row type moves
-- the table up in sql/schema.sql's dump.)
CREATE OR REPLACE FUNCTION relance_api_suppression_json(p_pattern text, p_reason text, p_created_at timestamptz)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('pattern', p_pattern, 'reason', p_reason, 'created_at', relance_api_time(p_created_at))
$$;

-- GET /v1/suppressions: one page in pattern order after the cursor
-- p_after (NULL: from the start).
CREATE OR REPLACE FUNCTION relance_api_suppressions_list(p_limit int, p_after text)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    -- the primary key's order (the database's collation): the index
    -- serves both the WHERE and the ORDER BY
    RETURN QUERY
    SELECT relance_api_page_status('suppressions', p_after),
           relance_api_page('suppressions', p_after, p_limit, array_agg(q.pattern ORDER BY q.pattern),
                            array_agg(q.doc ORDER BY q.pattern))
      FROM (SELECT s.pattern, relance_api_suppression_json(s.pattern, s.reason, s.created_at)::json AS doc
              FROM suppressions s
             WHERE s.pattern > coalesce(relance_api_text_cursor_key('suppressions', p_after), '')
             ORDER BY s.pattern LIMIT p_limit + 1) q;
END $$;

-- POST /v1/suppressions: `relance suppress add` for one pattern (stored
-- lower-case; one already there keeps its first reason; the live
-- enrollments it covers stop in the same transaction). 201 when added,
-- 200 when it was there; the suppression with stopped_enrollments.
CREATE OR REPLACE FUNCTION relance_api_suppression_add(p_pattern text, p_reason text)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM relance_suppress_add_from(ARRAY[p_pattern], p_reason, now(), 'api');
    RETURN QUERY
    SELECT CASE WHEN r.added > 0 THEN 201 ELSE 200 END,
           (relance_api_suppression_json(s.pattern, s.reason, s.created_at)
            || jsonb_build_object('stopped_enrollments', r.stopped))::text
      FROM suppressions s WHERE s.pattern = lower(p_pattern);
END $$;

-- DELETE /v1/suppressions/{pattern}: `relance suppress remove` for one
-- pattern; 200 with the suppression that was lifted, 404 when there was
-- none.
CREATE OR REPLACE FUNCTION relance_api_suppression_delete(p_pattern text)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    s suppressions;
BEGIN
    SELECT * INTO s FROM suppressions x WHERE x.pattern = lower(p_pattern) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, relance_api_problem(404, 'not-found', 'Not found',
                                                     'no suppression ' || lower(p_pattern));
        RETURN;
    END IF;
    PERFORM relance_suppress_remove(ARRAY[p_pattern]);
    RETURN QUERY SELECT 200, relance_api_suppression_json(s.pattern, s.reason, s.created_at)::text;
END $$;

-- ---- accounts -------------------------------------------------------------

-- The accounts as the API shows them, at p_now, by id: what `relance
-- accounts list` shows (relance_accounts_list's rows).
CREATE OR REPLACE FUNCTION relance_api_accounts(p_now timestamptz)
RETURNS TABLE (id bigint, email text, account jsonb)
LANGUAGE sql STABLE AS $$
    SELECT a.id, a.email,
           jsonb_build_object('id', a.id::text, 'email', a.email, 'pool', a.pool, 'configured', a.configured,
                              'state', a.state, 'state_reason', a.state_reason,
                              'state_changed_at', relance_api_time(a.state_changed_at), 'timezone', a.timezone,
                              'today', to_char(a.day, 'YYYY-MM-DD'), 'sent_today', a.sent,
                              'limit_today', a.day_limit, 'last_reply_at', relance_api_time(a.last_reply_at))
      FROM relance_accounts_list(p_now) a
     ORDER BY a.id
$$;

-- GET /v1/accounts: one page in id order after the cursor p_after.
CREATE OR REPLACE FUNCTION relance_api_accounts_list(p_limit int, p_after text)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT relance_api_page_status('accounts', p_after),
           relance_api_page('accounts', p_after, p_limit, array_agg(q.id::text ORDER BY q.id),
                            array_agg(q.account::json ORDER BY q.id))
      FROM (SELECT a.id, a.account FROM relance_api_accounts(now()) a
             WHERE a.id > coalesce(relance_api_cursor_id('accounts', p_after), 0)
             ORDER BY a.id LIMIT p_limit + 1) q;
END $$;

-- POST /v1/accounts/{email}/pause (p_pause) and /resume: `relance
-- accounts pause|resume`. 200 with the account, 404 when there is none,
-- 409 when it already was in the state asked for (as the command line
-- refuses it).
CREATE OR REPLACE FUNCTION relance_api_account_set(p_email text, p_pause boolean, p_reason text)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_was text;
    v_from text := CASE WHEN p_pause THEN 'active' ELSE 'paused' END;
BEGIN
    IF p_pause THEN
        v_was := relance_account_pause_by_email(p_email, now(), p_reason);
    ELSE
        v_was := relance_account_resume_by_email(p_email, now(), p_reason);
    END IF;
    IF v_was IS NULL THEN
        RETURN QUERY SELECT 404, relance_api_problem(404, 'not-found', 'Not found', 'no account ' || p_email);
    ELSIF v_was <> v_from THEN
        RETURN QUERY SELECT 409, relance_api_problem(409, 'conflict', 'Conflict',
                                                     format('%s is already %s', lower(btrim(p_email)), v_was));
    ELSE
        RETURN QUERY SELECT 200, a.account::text FROM relance_api_accounts(now()) a
                      WHERE a.email = lower(btrim(p_email));
    END IF;
END $$;

-- ---- messages -------------------------------------------------------------

-- GET /v1/messages: one page in id order after the cursor p_after, of
-- one enrollment's messages (p_enrollment) or all, of one state or all.
-- relance stores no bodies; the recipient is the enrollment's contact.
CREATE OR REPLACE FUNCTION relance_api_messages_list(p_limit int, p_after text, p_enrollment bigint, p_state text)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT relance_api_page_status('messages', p_after),
           relance_api_page('messages', p_after, p_limit, array_agg(q.id::text ORDER BY q.id),
                            array_agg(q.doc ORDER BY q.id))
      FROM (SELECT m.id, json_build_object(
                       'id', m.id::text, 'enrollment_id', m.enrollment_id::text, 'position', m.position,
                       'step', m.step_id, 'variant', m.variant, 'state', m.state, 'account', a.email,
                       'attempts', m.attempts, 'outcome', m.outcome, 'created_at', relance_api_time(m.created_at),
                       'sent_at', relance_api_time(m.sent_at)) AS doc
              FROM messages m LEFT JOIN accounts a ON a.id = m.account_id
             WHERE m.id > coalesce(relance_api_cursor_id('messages', p_after), 0)
               AND (p_enrollment IS NULL OR m.enrollment_id = p_enrollment)
               AND (p_state IS NULL OR m.state = p_state)
             ORDER BY m.id LIMIT p_limit + 1) q;
END $$;
