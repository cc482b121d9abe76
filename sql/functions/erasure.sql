-- Erasing a person (GDPR art. 17: DELETE /v1/contacts/{id}): their address
-- and custom fields removed from every table that holds them, in one
-- transaction, while what the stats count stays and a suppression keyed
-- by a hash of the address (relance_erased_pattern) keeps them from ever
-- being mailed again.
--
--   contacts(erased_at): the row stays (enrollments point at it), emptied;
--     its email becomes 'erased-ID@erased.invalid'
--   enrollments: live ones stopped ('erased'); reasons naming the address
--     rewritten
--   messages(recipient, subject, reply), inbound_messages(sender),
--   events(data: the address, the external_id), suppressions(pattern, reason), api_idempotency(body):
--     the address removed where it appears
--   tracking_hits(user_agent, url): emptied, as retention does

-- The text with every spelling of the address (any case) replaced.
CREATE OR REPLACE FUNCTION relance_erase_text(p_text text, p_addr text, p_by text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT regexp_replace(p_text, regexp_replace(p_addr, '([^a-zA-Z0-9@])', '\\\1', 'g'), p_by, 'gi')
$$;

-- Erases the contact p_ref names (relance_api_contact_id's forms).
-- (status, body): 200 {"id", "erased": true}, or a 404 problem.
CREATE OR REPLACE FUNCTION relance_contact_erase(p_ref text, p_now timestamptz)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    c contacts;
    v_addr text;
    v_by text;
    v_enrollments bigint[];
BEGIN
    SELECT * INTO c FROM contacts x WHERE x.id = relance_api_contact_id(p_ref) AND x.erased_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, relance_api_problem(404, 'not-found', 'Not found', 'no contact ' || p_ref);
        RETURN;
    END IF;
    v_addr := c.email_key;
    v_by := 'erased-' || c.id || '@erased.invalid';
    SELECT array_agg(e.id ORDER BY e.id) INTO v_enrollments FROM enrollments e WHERE e.contact_id = c.id;
    -- never mailed again: the hash stays, the address goes
    DELETE FROM suppressions WHERE pattern = v_addr;
    INSERT INTO suppressions (pattern, reason, created_at)
    VALUES (relance_erased_pattern(v_addr), 'erased', p_now)
    ON CONFLICT (pattern) DO NOTHING;
    UPDATE suppressions SET reason = relance_erase_text(reason, v_addr, v_by)
     WHERE strpos(lower(reason), v_addr) > 0;
    -- its enrollments end; what named the address no longer does
    PERFORM 1 FROM enrollments WHERE id = ANY (v_enrollments) ORDER BY id FOR UPDATE;
    WITH up AS (
        UPDATE enrollments e SET state = 'stopped', state_reason = 'erased', state_changed_at = p_now,
                                 next_send_at = NULL
         WHERE e.id = ANY (v_enrollments) AND e.state IN ('active', 'paused', 'held')
        RETURNING e.id, e.sequence_id, e.account_id)
    INSERT INTO events (kind, occurred_at, contact_id, data)
    SELECT 'enrollment.stopped', p_now, c.id,
           relance_event_data(c.id, NULL, v_by, up.id, s.name, NULL, NULL, a.email)
           || jsonb_build_object('state', 'stopped', 'reason', 'erased')
      FROM up JOIN sequences s ON s.id = up.sequence_id LEFT JOIN accounts a ON a.id = up.account_id
     ORDER BY up.id;
    UPDATE enrollments SET state_reason = relance_erase_text(state_reason, v_addr, v_by)
     WHERE id = ANY (v_enrollments) AND strpos(lower(state_reason), v_addr) > 0;
    UPDATE messages SET recipient = v_by, subject = NULL, reply = relance_erase_text(reply, v_addr, v_by)
     WHERE enrollment_id = ANY (v_enrollments);
    UPDATE inbound_messages SET sender = relance_erase_text(sender, v_addr, v_by)
     WHERE enrollment_id = ANY (v_enrollments) OR lower(sender) LIKE '%' || v_addr || '%';
    UPDATE tracking_hits h SET user_agent = NULL, url = NULL
      FROM messages m
     WHERE m.id = h.message_id AND m.enrollment_id = ANY (v_enrollments);
    UPDATE events SET data = relance_erase_text(data::text, v_addr, v_by)::jsonb
     WHERE strpos(lower(data::text), v_addr) > 0;
    -- nor the CRM's id (the contact has none any more)
    UPDATE events SET data = jsonb_set(data, '{contact,external_id}', 'null')
     WHERE contact_id = c.id AND data #>> '{contact,external_id}' IS NOT NULL;
    DELETE FROM api_idempotency WHERE strpos(lower(body), v_addr) > 0;
    UPDATE contacts SET email = v_by, first_name = NULL, last_name = NULL, title = NULL, company = NULL,
                        company_domain = NULL, timezone = NULL, crm_id = NULL, fields = '{}', updated_at = p_now,
                        erased_at = p_now
     WHERE id = c.id;
    PERFORM relance_event('contact.erased', p_now, c.id, NULL, NULL, NULL);
    RETURN QUERY SELECT 200, jsonb_build_object('id', c.id::text, 'erased', true)::text;
END $$;
