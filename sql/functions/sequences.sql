-- sequences: sequences and their versions, as `relance apply` writes them.
--
-- A sequence file applied for the first time creates a sequence and its
-- version 1; a changed file adds version N+1 and moves current_version;
-- enrollments keep the version they started with, so every version stays
-- readable for good. The YAML source is stored verbatim (preview and show
-- re-read it with the same loader as lint), and what the scheduler needs
-- is stored as columns so SQL can compute send times without parsing.
--
-- Today's tables (sql/schema.sql holds every constraint and index):
--
-- TABLE sequences (
--     id              bigserial   PRIMARY KEY
--     name            text        NOT NULL UNIQUE   -- lower-case words joined by '-'
--     current_version int         NOT NULL DEFAULT 1
--     created_at      timestamptz NOT NULL DEFAULT now()
--     updated_at      timestamptz NOT NULL DEFAULT now()
-- )
--
-- TABLE sequence_versions (
--     sequence_id       bigint      NOT NULL REFERENCES sequences -- PRIMARY KEY (sequence_id, version)
--     version           int         NOT NULL          -- from 1
--     content_hash      text        NOT NULL          -- SHA-256 of the canonical model
--     source_file       text        NOT NULL
--     source            text        NOT NULL          -- the YAML as applied
--     model             jsonb       NOT NULL          -- the validated model, canonical
--     sender_pool       text        NOT NULL
--     timezone          text                          -- NULL: the contact's, else fallback_timezone
--     fallback_timezone text
--     window_start_min  int         NOT NULL          -- [start, end) minutes after local midnight
--     window_end_min    int         NOT NULL
--     days              int         NOT NULL          -- mon=1 tue=2 ... sun=64
--     jitter_seconds    int         NOT NULL DEFAULT 600
--     stop_on           text[]      NOT NULL          -- reply bounce unsubscribe company_reply
--     created_at        timestamptz NOT NULL DEFAULT now()
-- )
--
-- TABLE sequence_steps (
--     sequence_id        bigint  NOT NULL  -- REFERENCES sequence_versions with version;
--     version            int     NOT NULL  -- PRIMARY KEY (sequence_id, version, position)
--     position           int     NOT NULL  -- 0 is the first step
--     step_id            text    NOT NULL  -- UNIQUE within a version
--     wait_seconds       bigint  NOT NULL DEFAULT 0
--     wait_days          int     NOT NULL DEFAULT 0
--     wait_business_days int     NOT NULL DEFAULT 0
--     thread             boolean NOT NULL DEFAULT true
-- )

-- Applies one sequence: p_model is its validated model as relance's
-- sequence_to_json writes it ({"name", "sender_pool", "schedule":
-- {"timezone" (an IANA name or "contact"), "fallback_timezone", "window":
-- {"start_minute", "end_minute"}, "days": ["mon", ...], "jitter_seconds"},
-- "stop_on": [...], "steps": [{"id", "wait": {"seconds", "days",
-- "business_days"}, "thread"}, ...]}), p_hash the SHA-256 of that text,
-- p_source the YAML read from p_source_file. A new name is created at v1,
-- a changed model (another hash) becomes vN+1, an identical one is left
-- alone. Returns result 'created', 'updated' or 'unchanged' and the
-- current version. Applies run one at a time (versions are numbered by
-- reading the last): it locks the sequences table until the caller's
-- transaction ends, which may apply several.
CREATE OR REPLACE FUNCTION relance_sequence_apply(p_model jsonb, p_hash text, p_source_file text, p_source text,
                                                  p_now timestamptz)
RETURNS TABLE (result text, version int) LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_current int;
    v_hash text;
    v_version int;
BEGIN
    LOCK TABLE sequences IN SHARE ROW EXCLUSIVE MODE;
    SELECT s.id, s.current_version, v.content_hash INTO v_id, v_current, v_hash
      FROM sequences s JOIN sequence_versions v ON v.sequence_id = s.id AND v.version = s.current_version
     WHERE s.name = p_model->>'name'
       FOR UPDATE OF s;
    IF NOT FOUND THEN
        INSERT INTO sequences (name, current_version, created_at, updated_at)
        VALUES (p_model->>'name', 1, p_now, p_now)
        RETURNING id INTO v_id;
        result := 'created';
        v_version := 1;
    ELSIF v_hash = p_hash THEN
        result := 'unchanged';
        version := v_current;
        RETURN NEXT;
        RETURN;
    ELSE
        result := 'updated';
        v_version := v_current + 1;
    END IF;
    INSERT INTO sequence_versions (sequence_id, version, content_hash, source_file, source, model, sender_pool,
                                   timezone, fallback_timezone, window_start_min, window_end_min, days,
                                   jitter_seconds, stop_on)
    SELECT v_id, v_version, p_hash, p_source_file, p_source, p_model, p_model->>'sender_pool',
           nullif(p_model #>> '{schedule,timezone}', 'contact'), p_model #>> '{schedule,fallback_timezone}',
           (p_model #>> '{schedule,window,start_minute}')::int, (p_model #>> '{schedule,window,end_minute}')::int,
           (SELECT sum(1 << (array_position(ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], d) - 1))
              FROM jsonb_array_elements_text(p_model #> '{schedule,days}') d)::int,
           (p_model #>> '{schedule,jitter_seconds}')::int,
           ARRAY(SELECT s FROM jsonb_array_elements_text(p_model->'stop_on') WITH ORDINALITY x (s, n) ORDER BY n);
    INSERT INTO sequence_steps (sequence_id, version, position, step_id, wait_seconds, wait_days, wait_business_days,
                                thread)
    SELECT v_id, v_version, x.n - 1, x.step->>'id', (x.step #>> '{wait,seconds}')::bigint,
           (x.step #>> '{wait,days}')::int, (x.step #>> '{wait,business_days}')::int, (x.step->>'thread')::boolean
      FROM jsonb_array_elements(p_model->'steps') WITH ORDINALITY x (step, n);
    IF result = 'updated' THEN
        UPDATE sequences SET current_version = v_version, updated_at = p_now WHERE id = v_id;
    END IF;
    PERFORM relance_event('sequence.applied', p_now, NULL, NULL, NULL,
                          jsonb_build_object('sequence', p_model->>'name', 'version', v_version, 'checksum', p_hash,
                                             'steps', jsonb_array_length(p_model->'steps'), 'result', result));
    version := v_version;
    RETURN NEXT;
END $$;

-- The account the latest enrollment of contact p_contact in sequence
-- p_sequence sends from, or NULL: the account `relance preview` and the
-- API's preview show the step from.
CREATE OR REPLACE FUNCTION relance_preview_enrolled_account(p_contact bigint, p_sequence text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT a.email FROM enrollments e JOIN sequences s ON s.id = e.sequence_id JOIN accounts a ON a.id = e.account_id
     WHERE e.contact_id = p_contact AND s.name = p_sequence ORDER BY e.id DESC LIMIT 1
$$;
