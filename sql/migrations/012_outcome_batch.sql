-- The outcomes of many sends written in one statement: one round trip for
-- a batch instead of one per message (relance gathers the outcomes that
-- come in while the previous batch is being written). Each outcome runs in
-- its own subtransaction, so one that fails cannot undo the others: it is
-- returned with its error for relance to log, and its row stays 'sending'
-- to be rescued as when a single outcome write failed. A message refused
-- at SMTP time keeps its A/B variant too (relance_step_outcome records it
-- only with 'sent' and 'unknown'), so stats count its bounce under it.
CREATE FUNCTION relance_step_outcomes(p_message_ids text[], p_nows timestamptz[], p_outcomes text[],
                                      p_replies text[], p_accepted boolean[], p_subjects text[],
                                      p_senders text[], p_variants int[])
RETURNS TABLE (failed_message_id text, error text) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_message_ids, 1), 0) LOOP
        BEGIN
            PERFORM relance_step_outcome(p_message_ids[i], p_nows[i], p_outcomes[i], p_replies[i], p_accepted[i],
                                         p_subjects[i], p_senders[i], p_variants[i]);
            IF p_variants[i] IS NOT NULL AND p_outcomes[i] NOT IN ('sent', 'unknown') THEN
                UPDATE messages SET variant = p_variants[i]
                 WHERE message_id = p_message_ids[i] AND variant IS NULL;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            failed_message_id := p_message_ids[i];
            error := SQLERRM;
            RETURN NEXT;
        END;
    END LOOP;
END $$;
