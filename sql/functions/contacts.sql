-- contacts: the prospects, the addresses never to mail, and what a change
-- to a contact does.
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
-- )
--
-- An address ('a@b.example') or a whole domain ('@b.example'), lower-case.
-- Suppressed addresses are never enrolled and never mailed.
-- TABLE suppressions (
--     pattern        text        PRIMARY KEY       -- lower-case, holds an @
--     reason         text        NOT NULL DEFAULT 'manual'
--     created_at     timestamptz NOT NULL DEFAULT now()
-- )

-- True when the address is suppressed, by itself or by its domain.
CREATE OR REPLACE FUNCTION relance_suppressed(addr text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM suppressions
                   WHERE pattern = lower(addr) OR pattern = '@' || split_part(lower(addr), '@', 2))
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
    UPDATE enrollments SET state = 'active', state_reason = 'contact updated',
                           state_changed_at = NEW.updated_at
     WHERE contact_id = NEW.id AND state = 'held' AND state_reason LIKE 'missing_field:%';
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER contacts_changed AFTER UPDATE ON contacts
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION relance_contact_changed();
