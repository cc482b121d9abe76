-- contacts: the prospects, the addresses never to mail, what a change to
-- a contact does, and the CSV import.
--
-- Today's tables (sql/schema.sql holds every constraint and index;
-- sql/migrations/ how they came to be):
--
-- TABLE contacts (
--     id             bigserial   PRIMARY KEY
--     email          text        NOT NULL          -- trimmed, domain lower-cased
--     email_key      text        GENERATED ALWAYS AS (lower(email)) STORED UNIQUE
--     first_name     text
--     last_name      text
--     title          text
--     company        text
--     company_domain text                          -- from the email unless given; NULL for free mail
--     timezone       text                          -- IANA name, validated on the way in
--     crm_id         text        UNIQUE
--     fields         jsonb       NOT NULL DEFAULT '{}' -- custom fields, an object
--     created_at     timestamptz NOT NULL DEFAULT now()
--     updated_at     timestamptz NOT NULL DEFAULT now()
--     erased_at      timestamptz                   -- the person was erased (erasure.sql): the row is emptied
--     event_seq      bigint      NOT NULL DEFAULT 0 -- the seq of its last event (events.sql)
-- )
--
-- An address ('a@b.example') or a whole domain ('@b.example'), lower-case.
-- Suppressed addresses are never enrolled and never mailed.
-- TABLE suppressions (
--     pattern        text        PRIMARY KEY       -- lower-case, holds an @
--     reason         text        NOT NULL DEFAULT 'manual'
--     created_at     timestamptz NOT NULL DEFAULT now()
-- )

-- The patterns that would suppress an address: itself, its '@domain',
-- and its erased form (relance_erased_pattern: what stays of an address
-- whose person was erased). The one statement of the rule; a query over
-- many addresses joins suppressions on it (pattern = ANY (...), by the
-- primary key) rather than call relance_suppressed per row.
CREATE OR REPLACE FUNCTION relance_suppression_keys(addr text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[lower(addr), '@' || split_part(lower(addr), '@', 2), relance_erased_pattern(addr)]
$$;

-- The suppression an erasure leaves: a SHA-256 of the lower-case address,
-- in a pattern's form ('erased:HEX@erased.invalid'), so that the person is
-- never mailed again while the address itself is gone.
CREATE OR REPLACE FUNCTION relance_erased_pattern(addr text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'erased:' || encode(sha256(convert_to(lower(addr), 'UTF8')), 'hex') || '@erased.invalid'
$$;

-- True when the address is suppressed, by itself or by its domain.
CREATE OR REPLACE FUNCTION relance_suppressed(addr text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM suppressions WHERE pattern = ANY (relance_suppression_keys(addr)))
$$;

-- The suppression that covers the address (the address's own before its
-- domain's), or NULL: what a stop for it names.
CREATE OR REPLACE FUNCTION relance_suppression_of(addr text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT pattern FROM suppressions WHERE pattern = ANY (relance_suppression_keys(addr))
     ORDER BY pattern LIKE '@%' LIMIT 1
$$;

-- `relance suppress add`: stores the patterns (lower-case; one already
-- there keeps its first reason) and, in the same transaction, stops every
-- live enrollment of a contact they cover: 'stopped', reason
-- 'suppressed: PATTERN', with an 'enrollment.stopped' event each, so a
-- suppressed domain's enrollments end when it is suppressed rather than
-- at their next send (the claim's check stays as the last guard).
-- Patterns already there stop what they cover too: rows from before this
-- rule. Returns how many patterns were added, were already there, and
-- how many enrollments stopped.
--
-- A contact whose own address is newly suppressed has asked not to be
-- written to: a contact.unsubscribed event each, from p_source ('import'
-- for the command line's lists, 'api' for POST /v1/suppressions), before
-- its enrollments' enrollment.stopped. A domain pattern is a block, not
-- anyone's request: no event.
CREATE OR REPLACE FUNCTION relance_suppress_add_from(p_patterns text[], p_reason text, p_now timestamptz,
                                                     p_source text)
RETURNS TABLE (added bigint, already bigint, stopped bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_pats text[] := ARRAY(SELECT DISTINCT lower(x) FROM unnest(p_patterns) x);
    v_new text[];
    v_added bigint;
    v_ids bigint[];
    v_why text[];
    v_n bigint;
BEGIN
    WITH ins AS (INSERT INTO suppressions (pattern, reason, created_at)
                 SELECT x, p_reason, p_now FROM unnest(v_pats) x
                 ON CONFLICT (pattern) DO NOTHING RETURNING pattern)
    SELECT count(*), array_agg(ins.pattern) FILTER (WHERE ins.pattern NOT LIKE '@%') INTO v_added, v_new FROM ins;
    INSERT INTO events (kind, occurred_at, contact_id, data)
    SELECT 'contact.unsubscribed', p_now, c.id,
           relance_event_data(c.id, c.crm_id, c.email, NULL, NULL, NULL, NULL, NULL)
           || jsonb_strip_nulls(jsonb_build_object('source', p_source, 'reason', p_reason))
      FROM contacts c
     WHERE c.email_key = ANY (v_new)
     ORDER BY c.id;
    -- From the live enrollments (few) to their contacts, not from the
    -- contacts (many) by a domain no index knows.
    SELECT array_agg(h.id ORDER BY h.id), array_agg(h.pattern ORDER BY h.id) INTO v_ids, v_why
      FROM (SELECT DISTINCT ON (e.id) e.id, x AS pattern
              FROM enrollments e
              JOIN contacts c ON c.id = e.contact_id
              JOIN unnest(v_pats) x ON x = c.email_key OR x = '@' || split_part(c.email_key, '@', 2)
             WHERE e.state IN ('active', 'paused', 'held')
             ORDER BY e.id, x LIKE '@%') h;
    -- Locked in id order, as relance_inbound_stop does, so two stops of
    -- the same enrollments cannot deadlock.
    PERFORM 1 FROM enrollments WHERE id = ANY (v_ids) ORDER BY id FOR UPDATE;
    WITH up AS (
        UPDATE enrollments e SET state = 'stopped', state_reason = 'suppressed: ' || h.pattern,
                                 state_changed_at = p_now, next_send_at = NULL
          FROM unnest(v_ids, v_why) AS h (id, pattern)
         WHERE e.id = h.id AND e.state IN ('active', 'paused', 'held')
        RETURNING e.id, e.contact_id, e.sequence_id, e.account_id, e.state_reason)
    INSERT INTO events (kind, occurred_at, contact_id, data)
    SELECT 'enrollment.stopped', p_now, c.id,
           relance_event_data(c.id, c.crm_id, c.email, up.id, s.name, NULL, NULL, a.email)
           || jsonb_build_object('state', 'stopped', 'reason', up.state_reason)
      FROM up JOIN contacts c ON c.id = up.contact_id JOIN sequences s ON s.id = up.sequence_id
      LEFT JOIN accounts a ON a.id = up.account_id
     ORDER BY c.id, up.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN QUERY SELECT v_added, cardinality(v_pats) - v_added, v_n;
END $$;

-- The command line's: its lists are imports.
CREATE OR REPLACE FUNCTION relance_suppress_add(p_patterns text[], p_reason text, p_now timestamptz)
RETURNS TABLE (added bigint, already bigint, stopped bigint)
LANGUAGE sql AS $$
    SELECT * FROM relance_suppress_add_from(p_patterns, p_reason, p_now, 'import')
$$;

-- `relance suppress remove` and DELETE /v1/suppressions/{pattern}: lifts
-- the patterns (lower-cased; one that is not there is not an error). The
-- enrollments their adding stopped stay stopped. Returns how many were
-- removed and how many were not there.
CREATE OR REPLACE FUNCTION relance_suppress_remove(p_patterns text[])
RETURNS TABLE (removed bigint, absent bigint)
LANGUAGE sql AS $$
    WITH p AS (SELECT DISTINCT lower(x) AS pattern FROM unnest(p_patterns) x),
         del AS (DELETE FROM suppressions s USING p WHERE s.pattern = p.pattern RETURNING 1)
    SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM p) - (SELECT count(*) FROM del)
$$;

-- A contact's template fields as 'key<US>value<RS>key<US>value...' (US =
-- chr(31), RS = chr(30); both removed from values): the standard fields
-- and the custom ones, easy to split in C without a JSON parser.
CREATE OR REPLACE FUNCTION relance_contact_fields(p_contact bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT string_agg(translate(kv.key, chr(30) || chr(31), '  ') || chr(31) || translate(kv.value, chr(30) || chr(31), '  '), chr(30))
      FROM contacts c
     CROSS JOIN LATERAL jsonb_each_text(
               c.fields || jsonb_strip_nulls(jsonb_build_object(
                   'email', c.email, 'first_name', c.first_name, 'last_name', c.last_name, 'title', c.title,
                   'company', c.company, 'company_domain', c.company_domain, 'timezone', c.timezone))) kv
     WHERE c.id = p_contact
$$;

-- A held enrollment waiting for a contact field resumes by itself when the
-- contact changes; the dispatcher renders again and holds again if the
-- field is still missing.
CREATE OR REPLACE FUNCTION relance_contact_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- each enrollment woken tells the feed, as a resume by hand does
    WITH up AS (
        UPDATE enrollments SET state = 'active', state_reason = 'contact updated',
                               state_changed_at = NEW.updated_at
         WHERE contact_id = NEW.id AND state = 'held' AND state_reason LIKE 'missing_field:%'
        RETURNING id, sequence_id, account_id)
    INSERT INTO events (kind, occurred_at, contact_id, data)
    SELECT 'enrollment.resumed', NEW.updated_at, NEW.id,
           relance_event_data(NEW.id, NEW.crm_id, NEW.email, up.id, s.name, NULL, NULL, a.email)
           || jsonb_build_object('state', 'active', 'reason', 'contact updated')
      FROM up JOIN sequences s ON s.id = up.sequence_id LEFT JOIN accounts a ON a.id = up.account_id
     ORDER BY up.id;
    RETURN NEW;
END $$;
-- Its values, that is: not event_seq, the events' counter, which every
-- event about the contact bumps (events.sql). (Listed rather than the
-- whole row as JSON minus the counter: that conversion, twice a row, was
-- most of an enroll's time once each enrollment bumps its contact's
-- counter. A new column of contacts joins the list.)
CREATE OR REPLACE TRIGGER contacts_changed AFTER UPDATE ON contacts
    FOR EACH ROW WHEN ((OLD.email, OLD.first_name, OLD.last_name, OLD.title, OLD.company, OLD.company_domain,
                        OLD.timezone, OLD.crm_id, OLD.fields, OLD.created_at, OLD.updated_at, OLD.erased_at)
                       IS DISTINCT FROM
                       (NEW.email, NEW.first_name, NEW.last_name, NEW.title, NEW.company, NEW.company_domain,
                        NEW.timezone, NEW.crm_id, NEW.fields, NEW.created_at, NEW.updated_at, NEW.erased_at))
    EXECUTE FUNCTION relance_contact_changed();

-- The CSV import (`relance contacts import`), in one transaction that
-- the caller opens and commits:
--   1. relance_contacts_import_stage() creates the staging table
--      contacts_import (or empties it: it lives as long as the session,
--      emptied at each commit);
--   2. the caller loads the rows that passed its own per-row checks
--      (syntax, address, time zone): COPY contacts_import (line, email,
--      first_name, last_name, title, company, company_domain,
--      derived_domain, timezone, crm_id, fields) FROM STDIN;
--   3. relance_contacts_import_apply() refuses rows by line and upserts the
--      rest (the rules below), returning how many rows it inserted and
--      applied (applied - inserted existing contacts were matched);
--   4. relance_contacts_import_rejects() lists the refused rows.
-- Rules (the HTTP API's contact upserts follow them too, through the same
-- functions, stage and apply): a row's empty cell never wipes a stored value; custom
-- fields are merged key by key; the same email twice in a file: the last
-- row wins. A row is matched by its crm_id (the CRM's id, the API's
-- external_id) first, then by its email: when the crm_id is stored with
-- another email, that contact's email becomes the row's (the CRM is the
-- source of truth) — unless the row's email belongs to another contact
-- (a conflict: the row is refused, naming both), or another row of the
-- file names the old email (a contradiction: refused). A crm_id given to
-- two emails in the file refuses the second row; company_domain, when not
-- given, is derived from the email (derived_domain, NULL for free mail)
-- for new contacts and for contacts that have none; a given one replaces
-- the stored one; a contact whose values do not change is not rewritten
-- (updated_at stays, held enrollments are not woken).
CREATE OR REPLACE FUNCTION relance_contacts_import_stage() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- No index: the checks read the whole table once each anyway.
    -- Kept for the session, emptied at each commit: the API stages every
    -- upsert here, and a table dropped at commit made each call create it
    -- again (5 ms) and plan again every statement that reads it.
    CREATE TEMP TABLE IF NOT EXISTS contacts_import (
        line           bigint NOT NULL,        -- the row's line in the file
        email          text   NOT NULL,
        email_key      text   GENERATED ALWAYS AS (lower(email)) STORED,
        first_name     text,
        last_name      text,
        title          text,
        company        text,
        company_domain text,                   -- as given
        derived_domain text,                   -- from the email, NULL for free mail
        timezone       text,
        crm_id         text,
        fields         jsonb  NOT NULL,
        reject         text,                   -- why the row is refused
        conflict_ids   bigint[],               -- a conflict: the contact of the crm_id, the one of the email
        -- what contacts holds for the row, read once (apply): the contact
        -- its crm_id names, and the one its email names
        by_crm         bigint,
        by_crm_email   text,
        by_crm_domain  text,
        by_email       bigint,
        by_email_domain text
    ) ON COMMIT DELETE ROWS;
    DELETE FROM contacts_import; -- a second import in the same transaction starts empty
END $$;

-- Refuses rows by line (a crm_id held by another contact; then, only
-- when a cheap check finds any, duplicate emails and crm_ids), resolves
-- the company domain against the stored contact, and applies the other
-- rows in one upsert.
CREATE OR REPLACE FUNCTION relance_contacts_import_apply() RETURNS TABLE (inserted bigint, applied bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_dup_email boolean;
    v_dup_crm boolean;
    v_rename record;
    v_renamed bigint[] := '{}';
BEGIN
    -- contacts is read once for each staging row, through its unique
    -- indexes (crm_id, email_key), in LATERAL subqueries kept apart by
    -- OFFSET 0; the steps below use what was read. A join free to hash all
    -- of contacts costs a scan of the whole table per call: right for one
    -- import of 100,000 rows, wrong for the API's batches of 1,000 (20 to
    -- 60 ms each as contacts grew to 60,000 rows).
    UPDATE contacts_import s
       SET by_crm = c.id, by_crm_email = c.email, by_crm_domain = c.company_domain, by_email = o.id,
           by_email_domain = o.company_domain
      FROM contacts_import x
      LEFT JOIN LATERAL (SELECT c.id, c.email, c.company_domain FROM contacts c WHERE c.crm_id = x.crm_id OFFSET 0) c
             ON true
      LEFT JOIN LATERAL (SELECT o.id, o.company_domain FROM contacts o WHERE o.email_key = x.email_key OFFSET 0) o
             ON true
     WHERE x.line = s.line AND (c.id IS NOT NULL OR o.id IS NOT NULL); -- new contacts: nothing to write
    -- The crm_id is one contact's and the email another's:
    UPDATE contacts_import
       SET reject = format('crm_id ''%s'' belongs to %s (contact %s), and %s to contact %s', crm_id, by_crm_email,
                           by_crm, email, by_email),
           conflict_ids = ARRAY[by_crm, by_email]
     WHERE by_crm IS NOT NULL AND by_email IS NOT NULL AND by_crm <> by_email;
    SELECT EXISTS (SELECT FROM contacts_import WHERE reject IS NULL GROUP BY email_key HAVING count(*) > 1),
           EXISTS (SELECT FROM contacts_import WHERE reject IS NULL AND crm_id IS NOT NULL
                   GROUP BY crm_id HAVING count(*) > 1)
      INTO v_dup_email, v_dup_crm;
    IF v_dup_email THEN
        UPDATE contacts_import s
           SET reject = format('duplicate email %s: line %s has the same address and wins', s.email, d.last_line)
          FROM (SELECT line, max(line) OVER (PARTITION BY email_key) AS last_line
                  FROM contacts_import WHERE reject IS NULL) d
         WHERE s.line = d.line AND d.line < d.last_line;
    END IF;
    IF v_dup_crm THEN
        UPDATE contacts_import s
           SET reject = format('crm_id ''%s'' is also given to %s on line %s', s.crm_id, d.first_email, d.first_line)
          FROM (SELECT line, first_value(line) OVER w AS first_line, first_value(email) OVER w AS first_email
                  FROM contacts_import WHERE reject IS NULL AND crm_id IS NOT NULL
                WINDOW w AS (PARTITION BY crm_id ORDER BY line)) d
         WHERE s.line = d.line AND d.line <> d.first_line;
    END IF;
    -- a crm_id stored with another email: renamed, unless another row of
    -- the file names the old email too
    UPDATE contacts_import s
       SET reject = format('crm_id ''%s'' belongs to %s, which line %s names too', s.crm_id, s.by_crm_email, o.line)
      FROM contacts_import o
     WHERE s.reject IS NULL AND s.by_crm IS NOT NULL AND s.by_email IS NULL
       AND o.email_key = lower(s.by_crm_email) AND o.line <> s.line;
    -- (one UPDATE a renamed contact, by its id: renames are rare)
    FOR v_rename IN SELECT by_crm, email FROM contacts_import
                     WHERE reject IS NULL AND by_crm IS NOT NULL AND by_email IS NULL LOOP
        UPDATE contacts SET email = v_rename.email, updated_at = now() WHERE id = v_rename.by_crm;
        v_renamed := v_renamed || v_rename.by_crm;
    END LOOP;
    UPDATE contacts_import SET by_email = by_crm, by_email_domain = by_crm_domain
     WHERE reject IS NULL AND by_crm IS NOT NULL AND by_email IS NULL;
    UPDATE contacts_import SET company_domain = by_email_domain
     WHERE reject IS NULL AND company_domain IS NULL AND by_email_domain IS NOT NULL;
    -- Each contact created or changed writes its event in the same
    -- statement: contact.created with seq 1, contact.updated with the
    -- counter the update bumps (events.sql). A renamed contact changed
    -- even when nothing else does.
    RETURN QUERY
    WITH up AS (
        INSERT INTO contacts AS c (email, first_name, last_name, title, company, company_domain, timezone, crm_id,
                                   fields, event_seq)
        SELECT email, first_name, last_name, title, company, coalesce(company_domain, derived_domain), timezone,
               crm_id, fields, 1
          FROM contacts_import WHERE reject IS NULL
        ON CONFLICT (email_key) DO UPDATE
           SET first_name = coalesce(EXCLUDED.first_name, c.first_name),
               last_name = coalesce(EXCLUDED.last_name, c.last_name),
               title = coalesce(EXCLUDED.title, c.title),
               company = coalesce(EXCLUDED.company, c.company),
               company_domain = coalesce(EXCLUDED.company_domain, c.company_domain),
               timezone = coalesce(EXCLUDED.timezone, c.timezone),
               crm_id = coalesce(EXCLUDED.crm_id, c.crm_id),
               fields = c.fields || EXCLUDED.fields,
               updated_at = now(),
               event_seq = c.event_seq + 1
         WHERE c.id = ANY (v_renamed) OR (c.first_name, c.last_name, c.title, c.company, c.company_domain, c.timezone, c.crm_id, c.fields)
               IS DISTINCT FROM
               (coalesce(EXCLUDED.first_name, c.first_name), coalesce(EXCLUDED.last_name, c.last_name),
                coalesce(EXCLUDED.title, c.title), coalesce(EXCLUDED.company, c.company),
                coalesce(EXCLUDED.company_domain, c.company_domain), coalesce(EXCLUDED.timezone, c.timezone),
                coalesce(EXCLUDED.crm_id, c.crm_id), c.fields || EXCLUDED.fields)
        RETURNING c.id, c.crm_id, c.email, c.event_seq, (xmax = 0) AS inserted
    ), told AS (
        INSERT INTO events (kind, occurred_at, contact_id, seq, data)
        SELECT CASE WHEN up.inserted THEN 'contact.created' ELSE 'contact.updated' END, now(), up.id, up.event_seq,
               relance_event_data(up.id, up.crm_id, up.email, NULL, NULL, NULL, NULL, NULL)
          FROM up
    )
    SELECT (SELECT count(*) FROM up WHERE inserted),
           (SELECT count(*) FROM contacts_import WHERE reject IS NULL);
END $$;

-- The rows relance_contacts_import_apply refused, by line.
CREATE OR REPLACE FUNCTION relance_contacts_import_rejects() RETURNS TABLE (line bigint, reject text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY SELECT i.line, i.reject FROM contacts_import i WHERE i.reject IS NOT NULL ORDER BY i.line;
END $$;
