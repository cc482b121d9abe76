-- events: the outbox every state change writes its event to, in its own
-- transaction (the feed, GET /v1/events, reads it: api_events.sql; so
-- does `relance stats`), and the one shape of an event's data.
--
-- Today's table (sql/schema.sql holds every constraint and index;
-- sql/migrations/ how it came to be):
--
-- TABLE events (
--     id             bigserial   PRIMARY KEY
--     kind           text        NOT NULL          -- one of event_types, the catalogue (migration 024)
--     occurred_at    timestamptz NOT NULL
--     data           jsonb       NOT NULL DEFAULT '{}'
--     xid            xid8        NOT NULL DEFAULT pg_current_xact_id() -- the feed's commit order
--     contact_id     bigint                        -- the contact it is about, if any
--     seq            bigint                        -- that contact's n-th event (NULL without a contact)
-- )
--
-- The data's common part, each member where it applies:
--   contact        {id, external_id, email}: ids as strings, as the API shows them
--   enrollment_id  string
--   sequence       the sequence's name
--   step           the step's id, variant its A/B variant (integer)
--   account        the sender account's address
-- then the type's own members (bounce.kind, source, return_date, ...).
--
-- seq: one contact's events in the order they were written. Its writer
-- takes the number from contacts.event_seq by bumping it, which locks the
-- contact's row until commit, so two transactions writing about the same
-- contact number their events one after the other, and a rolled-back one
-- gives its numbers back. A writer that changes the contact row anyway
-- (the import) bumps the counter in that same write and sets seq itself;
-- any other gets it from relance_event_seq below.

-- The common part from the values (NULL: does not apply). Plain SQL with
-- no sub-query: the planner inlines it into a set-based writer's INSERT
-- ... SELECT, which joins the tables itself. (STABLE, as jsonb_build_object
-- is: declared IMMUTABLE it would not be inlined, and a call per row cost
-- a third of the events' insert in an import.)
CREATE OR REPLACE FUNCTION relance_event_data(p_contact bigint, p_external_id text, p_email text, p_enrollment bigint,
                                              p_sequence text, p_step text, p_variant int, p_account text)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('enrollment_id', p_enrollment::text, 'sequence', p_sequence,
                                                'account', p_account))
           -- a step's variant is null when it has no A/B variants
           || CASE WHEN p_step IS NULL THEN '{}'::jsonb
                   ELSE jsonb_build_object('step', p_step, 'variant', p_variant) END
           || CASE WHEN p_contact IS NULL THEN '{}'::jsonb
                   ELSE jsonb_build_object('contact', jsonb_build_object('id', p_contact::text,
                                                                         'external_id', p_external_id,
                                                                         'email', p_email)) END
$$;

-- The common part of an event about a message (messages.id), else an
-- enrollment, else a contact: each found through the one before (the
-- message's enrollment, the enrollment's contact); the account is the
-- message's sender, else the enrollment's. (PL/pgSQL, as relance_event:
-- its statement's plan is kept for the session. A SQL function called
-- per event is planned again at each call, and the sender writes an
-- event per message: that planning halved send_throughput.)
CREATE OR REPLACE FUNCTION relance_event_subject(p_contact bigint, p_enrollment bigint, p_message bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT relance_event_data(c.id, c.crm_id, c.email, e.id, s.name, m.step_id, m.variant, a.email)
              FROM (SELECT 1) one
              LEFT JOIN messages m ON m.id = p_message
              LEFT JOIN enrollments e ON e.id = coalesce(p_enrollment, m.enrollment_id)
              LEFT JOIN contacts c ON c.id = coalesce(p_contact, e.contact_id)
              LEFT JOIN sequences s ON s.id = e.sequence_id
              LEFT JOIN accounts a ON a.id = coalesce(m.account_id, e.account_id));
END $$;

-- Writes one event: the subject's common part (relance_event_subject's
-- arguments) and p_extra, the type's own members (which win a clash).
CREATE OR REPLACE FUNCTION relance_event(p_kind text, p_at timestamptz, p_contact bigint, p_enrollment bigint,
                                         p_message bigint, p_extra jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d jsonb := relance_event_subject(p_contact, p_enrollment, p_message);
BEGIN
    INSERT INTO events (kind, occurred_at, contact_id, data)
    VALUES (p_kind, p_at, (d #>> '{contact,id}')::bigint, d || coalesce(p_extra, '{}'::jsonb));
END $$;

-- An event with a contact and no seq yet takes the contact's next number.
CREATE OR REPLACE FUNCTION relance_event_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE contacts SET event_seq = event_seq + 1 WHERE id = NEW.contact_id RETURNING event_seq INTO NEW.seq;
    IF NOT FOUND THEN
        NEW.contact_id := NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER events_seq BEFORE INSERT ON events
    FOR EACH ROW WHEN (NEW.contact_id IS NOT NULL AND NEW.seq IS NULL) EXECUTE FUNCTION relance_event_seq();

-- Only the catalogue's types are written (event_types, migration 024):
-- checked once per statement over the kinds it wrote, not per row as the
-- foreign key it replaces did (migration 025: that check was a fifth of
-- a 100,000-contact import, which writes an event per contact).
-- Catalogue rows are never removed.
CREATE OR REPLACE FUNCTION relance_events_catalogued() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_kind text;
BEGIN
    SELECT n.kind INTO v_kind
      FROM (SELECT DISTINCT kind FROM relance_new_events) n
     WHERE NOT EXISTS (SELECT FROM event_types t WHERE t.type = n.kind)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'events_kind_catalogued: % is not an event type of the catalogue (event_types)', v_kind
              USING ERRCODE = 'foreign_key_violation', TABLE = 'events', CONSTRAINT = 'events_kind_catalogued';
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER events_kind_catalogued AFTER INSERT ON events
    REFERENCING NEW TABLE AS relance_new_events FOR EACH STATEMENT EXECUTE FUNCTION relance_events_catalogued();
CREATE OR REPLACE TRIGGER events_kind_catalogued_update AFTER UPDATE ON events
    REFERENCING NEW TABLE AS relance_new_events FOR EACH STATEMENT EXECUTE FUNCTION relance_events_catalogued();
