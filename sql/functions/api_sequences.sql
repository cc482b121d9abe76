-- The HTTP API's sequences (service/api_sequences.c): JSON out, as
-- api.sql's functions answer (status, body) with problems built by
-- relance_api_problem. The tables are sequences.sql's; the writes go
-- through relance_sequence_apply, the function `relance apply` calls, and
-- the figures through relance_stats_json, the one of `relance stats
-- --json`, so the two faces cannot disagree.

-- A version's daily window as the configuration writes it: "09:00".
CREATE OR REPLACE FUNCTION relance_api_sequence_minute(p_min int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT lpad((p_min / 60)::text, 2, '0') || ':' || lpad((p_min % 60)::text, 2, '0')
$$;

-- GET /v1/sequences: the sequences in id order (a stable cursor while
-- others are applied), each with its current version's pool and step
-- count and its active enrollments, as `relance sequences list` shows.
CREATE OR REPLACE FUNCTION relance_api_sequences_list(p_limit int, p_after text)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT relance_api_page_status('sequences', p_after),
           relance_api_page('sequences', p_after, p_limit, array_agg(q.id::text ORDER BY q.id),
                            array_agg(q.doc ORDER BY q.id))
      FROM (SELECT s.id, json_build_object(
                       'name', s.name, 'current_version', s.current_version, 'sender_pool', v.sender_pool,
                       'steps', (SELECT count(*) FROM sequence_steps t
                                  WHERE t.sequence_id = s.id AND t.version = s.current_version),
                       'active_enrollments', (SELECT count(*) FROM enrollments e
                                               WHERE e.sequence_id = s.id AND e.state = 'active'),
                       'created_at', relance_api_time(s.created_at),
                       'updated_at', relance_api_time(s.updated_at)) AS doc
              FROM sequences s
              JOIN sequence_versions v ON v.sequence_id = s.id AND v.version = s.current_version
             WHERE s.id > coalesce(relance_api_cursor_id('sequences', p_after), 0)
             ORDER BY s.id LIMIT p_limit + 1) q;
END $$;

-- GET /v1/sequences/{name}: every version, oldest first, with its
-- schedule, its enrollments and its steps with their waits, as `relance
-- sequences show` shows them.
CREATE OR REPLACE FUNCTION relance_api_sequence_get(p_name text)
RETURNS TABLE (status int, body text)
LANGUAGE sql STABLE AS $$
    SELECT 200, jsonb_build_object(
               'name', s.name, 'current_version', s.current_version,
               'created_at', relance_api_time(s.created_at), 'updated_at', relance_api_time(s.updated_at),
               'versions', (
                   SELECT jsonb_agg(jsonb_build_object(
                              'version', v.version, 'applied_at', relance_api_time(v.created_at),
                              'source_file', v.source_file, 'sender_pool', v.sender_pool,
                              'schedule', jsonb_build_object(
                                  'timezone', coalesce(v.timezone, 'contact'),
                                  'fallback_timezone', v.fallback_timezone,
                                  'window', jsonb_build_object('start', relance_api_sequence_minute(v.window_start_min),
                                                               'end', relance_api_sequence_minute(v.window_end_min)),
                                  'days', (SELECT jsonb_agg(d.name ORDER BY d.bit)
                                             FROM unnest(ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])
                                                  WITH ORDINALITY d (name, bit)
                                            WHERE v.days & (1 << (d.bit::int - 1)) <> 0),
                                  'jitter_seconds', v.jitter_seconds),
                              'stop_on', to_jsonb(v.stop_on),
                              'enrollments', (SELECT count(*) FROM enrollments e
                                               WHERE e.sequence_id = s.id AND e.version = v.version),
                              'steps', (SELECT jsonb_agg(jsonb_build_object(
                                                   'position', t.position, 'id', t.step_id,
                                                   'wait', jsonb_build_object('seconds', t.wait_seconds,
                                                                              'days', t.wait_days,
                                                                              'business_days', t.wait_business_days),
                                                   'thread', t.thread) ORDER BY t.position)
                                          FROM sequence_steps t
                                         WHERE t.sequence_id = s.id AND t.version = v.version))
                          ORDER BY v.version)
                     FROM sequence_versions v WHERE v.sequence_id = s.id))::text
      FROM sequences s WHERE s.name = p_name
    UNION ALL
    SELECT 404, relance_api_problem(404, 'not-found', 'Not found', 'no sequence named ' || p_name)
     WHERE NOT EXISTS (SELECT 1 FROM sequences WHERE name = p_name)
$$;

-- PUT /v1/sequences/{name}: a file C linted clean, applied as `relance
-- apply` applies it (relance_sequence_apply, in the statement's own
-- transaction); p_warnings are lint's warnings about it
-- ([{line, column, message}]), answered with the result.
CREATE OR REPLACE FUNCTION relance_api_sequence_put(p_model jsonb, p_hash text, p_source_file text, p_source text,
                                                    p_now timestamptz, p_warnings jsonb)
RETURNS TABLE (status int, body text)
LANGUAGE sql AS $$
    SELECT 200, jsonb_build_object('result', a.result, 'version', a.version, 'warnings', p_warnings)::text
      FROM relance_sequence_apply(p_model, p_hash, p_source_file, p_source, p_now) a
$$;

-- GET /v1/sequences/{name}/stats: `relance stats --json`'s document.
CREATE OR REPLACE FUNCTION relance_api_sequence_stats(p_name text, p_since date)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM sequences WHERE name = p_name) THEN
        RETURN QUERY SELECT 404, relance_api_problem(404, 'not-found', 'Not found', 'no sequence named ' || p_name);
        RETURN;
    END IF;
    RETURN QUERY SELECT 200, relance_stats_json(p_name, p_since)::text;
END $$;

-- POST /v1/sequences/{name}/preview, what C needs to compose the step as
-- `relance preview` does: the current version's stored source (re-read
-- with lint's loader, as preview and the scheduler do), the contact's
-- packed fields (relance_contact_fields) and the account its latest
-- enrollment in this sequence sends from. p_contact is a contact
-- reference (relance_api_contact_id), or NULL for none. status 404: no
-- such sequence; 422: no such contact.
CREATE OR REPLACE FUNCTION relance_api_sequence_preview_source(p_name text, p_contact text)
RETURNS TABLE (status int, body text, source_file text, source text, fields text, enrolled text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_seq bigint;
    v_contact bigint;
BEGIN
    SELECT s.id INTO v_seq FROM sequences s WHERE s.name = p_name;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, relance_api_problem(404, 'not-found', 'Not found', 'no sequence named ' || p_name),
                            NULL::text, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    IF p_contact IS NOT NULL THEN
        v_contact := relance_api_contact_id(p_contact);
        IF v_contact IS NULL THEN
            RETURN QUERY SELECT 422, relance_api_problem(422, 'validation', 'Invalid request', 'no contact ' || p_contact,
                                                         jsonb_build_object('errors', jsonb_build_array(
                                                             jsonb_build_object('pointer', '/contact',
                                                                                'message', 'no contact ' || p_contact)))),
                                NULL::text, NULL::text, NULL::text, NULL::text;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
    SELECT 200, NULL::text, v.source_file, v.source,
           CASE WHEN v_contact IS NOT NULL THEN relance_contact_fields(v_contact) END,
           relance_preview_enrolled_account(v_contact, p_name)
      FROM sequences s JOIN sequence_versions v ON v.sequence_id = s.id AND v.version = s.current_version
     WHERE s.id = v_seq;
END $$;
