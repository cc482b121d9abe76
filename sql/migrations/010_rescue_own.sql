-- A replica's own rows whose claim answer was lost with the database
-- connection: claimed (state 'sending', claimed_by this replica) but never
-- seen by the process, so nothing will ever finish them. The replica
-- rescues them itself as soon as the connection is back, naming the rows
-- it does have in flight (p_keep), instead of leaving them 'sending' until
-- its next start. Same rule as relance_rescue_sending: a row whose body
-- had started is 'unknown' (never re-sent), else 'deferred'.
CREATE FUNCTION relance_rescue_own(p_now timestamptz, p_replica text, p_keep text[])
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    m record;
    n int := 0;
BEGIN
    FOR m IN SELECT ms.message_id, ms.body_started FROM messages ms
              WHERE ms.state = 'sending' AND ms.claimed_by = p_replica
                AND NOT (ms.message_id = ANY (coalesce(p_keep, '{}')))
                FOR UPDATE SKIP LOCKED
    LOOP
        IF m.body_started THEN
            PERFORM relance_step_done(m.message_id, p_now, 'unknown', 'claim answer lost with the connection',
                                      NULL, NULL, NULL);
        ELSE
            PERFORM relance_step_deferred(m.message_id, p_now, p_now, 'claim answer lost with the connection',
                                          false);
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
