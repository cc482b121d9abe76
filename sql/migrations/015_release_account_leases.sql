-- 015: a clean stop gives the account leases up (issue 14).
--
-- A replica holds 'account:ID' leases (relance_account_leases, 006) for
-- LEASE_TTL_S after its last renewal. Stopped with SIGTERM it used to
-- keep them until they expired, so a replica restarted right after it (or
-- another one) sent nothing from those accounts for up to 30 s. The
-- mailbox leases already had their release (relance_watch_release, 009).

-- Gives a replica's account leases up, so another replica (or the same
-- one restarted) takes them at its next renewal rather than after the
-- expiry. The scheduler calls it last when it stops, once its sender has
-- closed: no message of these accounts can still go out from this
-- replica, so another one claiming from them keeps the per-account caps
-- and spacing exact. Returns how many leases it gave up.
CREATE FUNCTION relance_release_account_leases(p_replica text)
RETURNS int LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM leases WHERE name LIKE 'account:%' AND holder = p_replica RETURNING 1)
    SELECT count(*)::int FROM gone
$$;
