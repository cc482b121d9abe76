-- 017: the enrollment state 'stopped' (issue 17).
--
-- 'completed' meant two things: the last step went out, and a user ended
-- the enrollment (`relance stop`, reason 'stopped by user'); and a
-- suppressed contact's enrollment ended 'failed' at send time, as if
-- something had broken. Every ending that is not the sequence's natural
-- end (a stop by hand, by the API or a CRM, a suppression) is now
-- 'stopped'; 'completed' means only that the last step went out, and
-- 'failed' only that relance could not go on.
--
-- 'stopped' is not live: enrollments_live (active, paused, held) and the
-- claim's indexes (active) need no change.
ALTER TABLE enrollments DROP CONSTRAINT enrollments_state_check;
ALTER TABLE enrollments ADD CONSTRAINT enrollments_state_check CHECK (state IN
    ('active', 'paused', 'held', 'replied', 'bounced', 'unsubscribed', 'completed', 'failed', 'stopped'));

-- The rows those two endings left, with their reasons kept.
UPDATE enrollments SET state = 'stopped' WHERE state = 'completed' AND state_reason = 'stopped by user';
UPDATE enrollments SET state = 'stopped' WHERE state = 'failed' AND state_reason = 'suppressed';
