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

-- What botcheck needs to know of a hit beside its request: seconds since
-- the message was delivered (its SMTP acceptance; NULL when not known),
-- and for a click the distinct destinations of the message clicked in
-- the last p_burst seconds, this one included. No row: the message is
-- not there (nothing is recorded then).
CREATE OR REPLACE FUNCTION relance_tracking_facts(p_message_id text, p_url text, p_now timestamptz,
                                                  p_burst int)
RETURNS TABLE (since_delivery double precision, links_clicked_recently int)
LANGUAGE sql STABLE AS $$
    SELECT extract(epoch FROM p_now - m.sent_at)::double precision,
           CASE WHEN p_url IS NULL THEN 0
                ELSE (SELECT count(DISTINCT u)::int
                        FROM (SELECT h.url AS u FROM tracking_hits h
                               WHERE h.message_id = m.id AND h.kind = 'click'
                                 AND h.at > p_now - make_interval(secs => p_burst) AND h.url IS NOT NULL
                              UNION ALL SELECT p_url) x) END
      FROM messages m
     WHERE m.message_id = p_message_id
$$;

-- Records one hit and writes its event (message.opened or link.clicked,
-- with bot_suspected, bot_reason, proxy and for a click its url) in one
-- transaction. p_kind is 'open' or 'click'; the user agent is cut to 256
-- characters. Returns false when the message is not there.
CREATE OR REPLACE FUNCTION relance_tracking_record(p_message_id text, p_kind text, p_url text, p_at timestamptz,
                                                   p_user_agent text, p_bot boolean, p_reason text,
                                                   p_proxy boolean)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    m record;
BEGIN
    SELECT id, message_id, position INTO m FROM messages WHERE message_id = p_message_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO tracking_hits (message_id, kind, url, at, user_agent, bot_suspected, bot_reason, proxy)
    VALUES (m.id, p_kind, CASE WHEN p_kind = 'click' THEN p_url END, p_at, left(p_user_agent, 256), p_bot,
            p_reason, p_proxy);
    PERFORM relance_event(CASE p_kind WHEN 'open' THEN 'message.opened' ELSE 'link.clicked' END, p_at, NULL, NULL,
                          m.id,
                          jsonb_build_object('message_id', m.message_id, 'position', m.position,
                                             'bot_suspected', p_bot, 'bot_reason', p_reason, 'proxy', p_proxy)
                          || CASE WHEN p_kind = 'click' THEN jsonb_build_object('url', p_url) ELSE '{}' END);
    RETURN true;
END $$;
