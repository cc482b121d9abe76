-- 004: contacts, suppressions, enrollments and messages.

CREATE TABLE contacts (
    id             bigserial   PRIMARY KEY,
    email          text        NOT NULL,          -- trimmed, domain lower-cased
    email_key      text        GENERATED ALWAYS AS (lower(email)) STORED UNIQUE,
    first_name     text,
    last_name      text,
    title          text,
    company        text,
    company_domain text,                          -- from the email unless given; NULL for free mail
    timezone       text,                          -- IANA name, validated on the way in
    crm_id         text        UNIQUE,
    fields         jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(fields) = 'object'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_company_domain ON contacts (company_domain) WHERE company_domain IS NOT NULL;

-- An address ('a@b.example') or a whole domain ('@b.example'), lower-case.
-- Suppressed addresses are never enrolled and never mailed.
CREATE TABLE suppressions (
    pattern    text        PRIMARY KEY CHECK (pattern = lower(pattern) AND pattern LIKE '%@%'),
    reason     text        NOT NULL DEFAULT 'manual',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- True when the address is suppressed, by itself or by its domain.
CREATE FUNCTION relance_suppressed(addr text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM suppressions
                   WHERE pattern = lower(addr) OR pattern = '@' || split_part(lower(addr), '@', 2))
$$;

CREATE TABLE enrollments (
    id               bigserial   PRIMARY KEY,
    contact_id       bigint      NOT NULL REFERENCES contacts (id),
    sequence_id      bigint      NOT NULL REFERENCES sequences (id),
    version          int         NOT NULL,        -- pinned at enrollment
    state            text        NOT NULL DEFAULT 'active' CHECK (state IN
                         ('active', 'paused', 'held', 'replied', 'bounced', 'unsubscribed', 'completed', 'failed')),
    state_reason     text        NOT NULL DEFAULT 'enrolled',
    state_changed_at timestamptz NOT NULL,
    position         int         NOT NULL DEFAULT 0,  -- the next step to send
    next_send_at     timestamptz,                     -- when that step is due (jitter included)
    jitter_r         double precision NOT NULL DEFAULT 0 CHECK (jitter_r >= 0 AND jitter_r < 1),
    account_id       bigint,                          -- the sender, fixed at the first step
    created_at       timestamptz NOT NULL,
    FOREIGN KEY (sequence_id, version) REFERENCES sequence_versions (sequence_id, version)
);
-- One live enrollment per contact and sequence.
CREATE UNIQUE INDEX enrollments_live ON enrollments (contact_id, sequence_id)
    WHERE state IN ('active', 'paused', 'held');
CREATE INDEX enrollments_contact ON enrollments (contact_id);
-- The claim: due active enrollments, oldest first.
CREATE INDEX enrollments_due ON enrollments (next_send_at) WHERE state = 'active';

-- One row per step sent (or being sent) to an enrollment. The unique key
-- is the at-most-once guarantee: a step can be attempted only through its
-- one row, whatever crashes or replicas do.
CREATE TABLE messages (
    id            bigserial   PRIMARY KEY,
    enrollment_id bigint      NOT NULL REFERENCES enrollments (id),
    position      int         NOT NULL,
    step_id       text        NOT NULL,
    variant       int,                            -- A/B variant index, NULL without variants
    state         text        NOT NULL CHECK (state IN
                      ('sending', 'sent', 'deferred', 'bounced', 'unknown', 'failed')),
    message_id    text        NOT NULL UNIQUE,    -- RFC 5322 Message-ID, without <>
    account_id    bigint,
    sender        text,
    recipient     text        NOT NULL,
    subject       text,
    attempts      int         NOT NULL DEFAULT 0,
    reply         text,                           -- the server's final reply
    claimed_by    text,                           -- the replica sending it (see leases)
    -- The point of no return was passed (for SMTP: the server said 354 and
    -- the body was about to go; recorded before it goes). A row left
    -- 'sending' with it may have been delivered; without it, it was not.
    body_started  boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    sent_at       timestamptz,
    UNIQUE (enrollment_id, position)
);
CREATE INDEX messages_state ON messages (state) WHERE state IN ('sending', 'deferred', 'unknown');

-- A held enrollment waiting for a contact field resumes by itself when the
-- contact changes; the dispatcher renders again and holds again if the
-- field is still missing.
CREATE FUNCTION relance_contact_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE enrollments SET state = 'active', state_reason = 'contact updated',
                           state_changed_at = NEW.updated_at
     WHERE contact_id = NEW.id AND state = 'held' AND state_reason LIKE 'missing_field:%';
    RETURN NEW;
END $$;
CREATE TRIGGER contacts_changed AFTER UPDATE ON contacts
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION relance_contact_changed();

-- Wake the dispatcher when work may have become due.
CREATE FUNCTION relance_notify_work() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('relance_work', '');
    RETURN NULL;
END $$;
CREATE TRIGGER enrollments_work AFTER INSERT OR UPDATE OF state, next_send_at ON enrollments
    FOR EACH STATEMENT EXECUTE FUNCTION relance_notify_work();
