-- 030: the history of the account and mailbox leases (issue 22).
--
-- leases (001) holds only who owns what now; to show after the fact that
-- each mailbox was watched and each account sent from by one replica at
-- a time (the chaos test, an operator after an incident), each tenure is
-- kept: one row from the moment a replica takes a lease to the moment it
-- gives it up or the lease runs out. Written by a trigger on leases
-- (sql/functions/leases.sql), so every statement that moves a lease is
-- recorded, this release's and the previous one's alike. Real clock, as
-- leases. The replicas' own 'replica:ID' leases are not kept.
CREATE TABLE lease_history (
    id        bigserial   PRIMARY KEY,
    name      text        NOT NULL,   -- 'account:ID' or 'watch:ADDRESS'
    holder    text        NOT NULL,   -- the replica
    since     timestamptz NOT NULL,   -- taken
    until     timestamptz NOT NULL,   -- the last expiry renewed, or the release
    released  boolean     NOT NULL DEFAULT false  -- given up, rather than left to expire
);
-- a lease's tenures in order: the trigger finds the current one
CREATE INDEX lease_history_name ON lease_history (name, id);
