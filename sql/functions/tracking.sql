-- tracking: what relance records of a hit on a tracked link or open image
-- (service/public.c answers it; service/lib/botcheck.c judges it). A hit
-- is a record, never a state change: nothing here touches a contact, an
-- enrollment or a message, and no stop, branch or score reads a hit.
--
-- Today's table (sql/schema.sql holds every constraint and index; the
-- messages it points at are in claim.sql):
--
-- TABLE tracking_hits (
--     id            bigserial   PRIMARY KEY
--     message_id    bigint      NOT NULL REFERENCES messages
--     kind          text        NOT NULL          -- 'open' or 'click'
--     url           text                          -- a click's destination; NULL for opens and once pruned
--     at            timestamptz NOT NULL
--     user_agent    text                          -- truncated to 256 characters; NULL once pruned
--     bot_suspected boolean     NOT NULL
--     bot_reason    text
--     proxy         boolean     NOT NULL DEFAULT false
-- )

-- A hit, in two steps around botcheck's verdict (service/public.c).
--
-- relance_tracking_hit writes it first, as not yet judged (bot_suspected
-- true, reason 'not judged': should the verdict never come, it counts as
-- machine traffic, not as a person), and answers what botcheck needs:
-- the row, seconds since the message was delivered (its SMTP acceptance;
-- NULL when not known) and, for a click, the distinct destinations of
-- the message clicked in the last p_burst seconds, this one included.
-- The hits of one message are written one at a time (a transaction lock
-- on the message), so a scanner fetching every link at once sees each
-- earlier one: counted before it was written, each saw only itself. No
-- row, and nothing written, when the message is not there or its person
-- was erased.
CREATE OR REPLACE FUNCTION relance_tracking_hit(p_message_id text, p_kind text, p_url text, p_at timestamptz,
                                                p_user_agent text, p_burst int)
RETURNS TABLE (hit_id bigint, since_delivery double precision, links_clicked_recently int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m record;
    v_id bigint;
    v_clicked int := 0;
BEGIN
    SELECT x.id, x.sent_at INTO m
      FROM messages x
      JOIN enrollments e ON e.id = x.enrollment_id
      JOIN contacts c ON c.id = e.contact_id
     WHERE x.message_id = p_message_id AND c.erased_at IS NULL;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('relance_tracking_hits'), hashint8(m.id));
    INSERT INTO tracking_hits (message_id, kind, url, at, user_agent, bot_suspected, bot_reason)
    VALUES (m.id, p_kind, CASE WHEN p_kind = 'click' THEN p_url END, p_at, left(p_user_agent, 256), true,
            'not judged')
    RETURNING id INTO v_id;
    IF p_kind = 'click' THEN
        SELECT count(DISTINCT h.url)::int INTO v_clicked
          FROM tracking_hits h
         WHERE h.message_id = m.id AND h.kind = 'click' AND h.url IS NOT NULL
           AND h.at > p_at - make_interval(secs => p_burst);
    END IF;
    RETURN QUERY SELECT v_id, extract(epoch FROM p_at - m.sent_at)::double precision, v_clicked;
END $$;

-- botcheck's verdict on hit p_hit, and its event (message.opened or
-- link.clicked) with the message's subject.
CREATE OR REPLACE FUNCTION relance_tracking_judged(p_hit bigint, p_bot boolean, p_reason text, p_proxy boolean)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    h tracking_hits;
    m record;
BEGIN
    UPDATE tracking_hits SET bot_suspected = p_bot, bot_reason = p_reason, proxy = p_proxy WHERE id = p_hit
    RETURNING * INTO h;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT message_id, position INTO m FROM messages WHERE id = h.message_id;
    PERFORM relance_event(CASE h.kind WHEN 'open' THEN 'message.opened' ELSE 'link.clicked' END, h.at, NULL, NULL,
                          h.message_id,
                          jsonb_build_object('message_id', m.message_id, 'position', m.position,
                                             'bot_suspected', p_bot, 'bot_reason', p_reason, 'proxy', p_proxy)
                          || CASE WHEN h.kind = 'click' THEN jsonb_build_object('url', h.url) ELSE '{}' END);
END $$;
