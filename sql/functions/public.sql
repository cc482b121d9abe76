-- public: what relance's public links do (service/public.c): the one-click
-- unsubscribe of RFC 8058 and its confirmation page. A link names the
-- message it came in by its Message-ID (messages.message_id, signed in
-- the token: service/lib/linktoken.h); everything else follows from it.
--
-- The tables it reads and writes are shown whole where they belong:
-- messages in claim.sql, contacts and suppressions in contacts.sql,
-- enrollments in enrollments.sql, events in events.sql; sql/schema.sql
-- holds every constraint and index.

-- What the confirmation page needs of a message: its sequence's language
-- (the page speaks it; NULL when the sequence names none), read from the
-- stored model, and whether its address is already suppressed. No row
-- for a message that is not there.
CREATE OR REPLACE FUNCTION relance_public_page(p_message_id text)
RETURNS TABLE (language text, suppressed boolean)
LANGUAGE sql STABLE AS $$
    SELECT v.model->>'language', relance_suppression_of(c.email) IS NOT NULL
      FROM messages m
      JOIN enrollments e ON e.id = m.enrollment_id
      JOIN contacts c ON c.id = e.contact_id
      JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version
     WHERE m.message_id = p_message_id
$$;

-- POST /u/TOKEN: the person the message went to asks, with one click, to
-- be written to no more. In this one transaction their address is
-- suppressed (reason 'one-click unsubscribe'), every live enrollment of
-- the contact becomes 'unsubscribed' (an enrollment.stopped event for
-- each but the message's own), and contact.unsubscribed is written with
-- source 'one_click' and the message, so `relance stats` counts it for
-- the step that was sent, as it counts an unsubscribe by reply.
-- (relance_suppress_add_from would suppress too, but stops enrollments as
-- 'stopped' and writes its event without the message.)
--
-- Idempotent: a second request changes nothing and writes nothing.
-- Returns 'unsubscribed' (something changed), 'already' (nothing left to
-- do) or 'unknown' (no such message, or its person was erased: nothing
-- is known to suppress).
CREATE OR REPLACE FUNCTION relance_one_click_unsubscribe(p_message_id text, p_now timestamptz)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_id bigint;
    v_stopped int := 0;
    v_added int;
    v_reason constant text := 'one-click unsubscribe';
BEGIN
    SELECT m.id AS message, m.message_id, m.position, m.enrollment_id, c.id AS contact, c.email, c.email_key,
           c.erased_at
      INTO r
      FROM messages m
      JOIN enrollments e ON e.id = m.enrollment_id
      JOIN contacts c ON c.id = e.contact_id
     WHERE m.message_id = p_message_id;
    IF NOT FOUND OR r.erased_at IS NOT NULL THEN
        RETURN 'unknown';
    END IF;
    -- Locked in id order, as relance_inbound_stop does, so that a reply
    -- or a suppression stopping the same enrollments cannot deadlock.
    FOR v_id IN SELECT id FROM enrollments
                 WHERE contact_id = r.contact AND state IN ('active', 'paused', 'held')
                 ORDER BY id FOR UPDATE
    LOOP
        UPDATE enrollments SET state = 'unsubscribed', state_reason = v_reason, state_changed_at = p_now,
                               next_send_at = NULL
         WHERE id = v_id;
        IF v_id <> r.enrollment_id THEN
            PERFORM relance_event('enrollment.stopped', p_now, NULL, v_id, NULL,
                                  jsonb_build_object('state', 'unsubscribed', 'reason', v_reason,
                                                     'because_of_enrollment_id', r.enrollment_id));
        END IF;
        v_stopped := v_stopped + 1;
    END LOOP;
    INSERT INTO suppressions (pattern, reason, created_at) VALUES (r.email_key, v_reason, p_now)
    ON CONFLICT (pattern) DO NOTHING;
    GET DIAGNOSTICS v_added = ROW_COUNT;
    IF v_added = 0 AND v_stopped = 0 THEN
        RETURN 'already';
    END IF;
    PERFORM relance_event('contact.unsubscribed', p_now, NULL, r.enrollment_id, r.message,
                          jsonb_build_object('message_id', r.message_id, 'position', r.position,
                                             'detected_at', p_now, 'source', 'one_click', 'reason', v_reason));
    RETURN 'unsubscribed';
END $$;
