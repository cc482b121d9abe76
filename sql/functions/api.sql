-- The HTTP API's statements (service/api.c, service/api_contacts.c): JSON
-- in, JSON out. C checks a request's shape and normalises its values (the
-- same rules as the CSV import: service/lib/contact.c); these functions
-- decide and write, through the same SQL as the command line.
--
--   api_keys(id, name, scopes text[], secret_hash bytea, created_at,
--            last_used_at, revoked_at)
--   api_idempotency(key_id, idem_key, request_hash bytea, created_at,
--                   status int NULL while the first request runs,
--                   content_type, body text: the answer, byte for byte)
--
-- Answers that are problems (RFC 9457) come back without request_id,
-- which C puts first.

-- The small helpers here are STABLE, not IMMUTABLE: their bodies call
-- STABLE functions (to_char, json_build_object, convert_to), and an SQL
-- function declared stricter than its body is never inlined, so each
-- call ran as a statement of its own (in the webhook claim, a third of
-- the time went there).

-- A timestamp as the API writes it: RFC 3339 in UTC, microseconds.
CREATE OR REPLACE FUNCTION relance_api_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE OR REPLACE FUNCTION relance_api_problem(p_status int, p_slug text, p_title text, p_detail text,
                                               p_extra jsonb DEFAULT '{}')
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT (jsonb_build_object('type', 'urn:relance:problem:' || p_slug, 'title', p_title, 'status', p_status,
                               'detail', p_detail) || p_extra)::text
$$;

-- A page cursor: opaque to clients (base64url of the list's tag and the
-- last row's key), stable while rows are added, since pages run in key
-- order.
CREATE OR REPLACE FUNCTION relance_api_text_cursor(p_tag text, p_key text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT rtrim(translate(replace(encode(convert_to(p_tag || ':' || p_key, 'UTF8'), 'base64'), E'\n', ''),
                           '+/', '-_'), '=')
$$;

-- The key a cursor of p_tag carries, or NULL when it is not one.
CREATE OR REPLACE FUNCTION relance_api_text_cursor_key(p_tag text, p_cursor text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v text;
    b text := translate(p_cursor, '-_', '+/');
BEGIN
    IF length(p_cursor) > 1400 OR p_cursor !~ '^[A-Za-z0-9_-]+$' THEN
        RETURN NULL;
    END IF;
    b := b || repeat('=', (4 - length(b) % 4) % 4);
    v := convert_from(decode(b, 'base64'), 'UTF8');
    IF left(v, length(p_tag) + 1) <> p_tag || ':' OR length(v) = length(p_tag) + 1 THEN
        RETURN NULL;
    END IF;
    RETURN substr(v, length(p_tag) + 2);
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

-- The same over ids, the key of most lists.
CREATE OR REPLACE FUNCTION relance_api_cursor(p_tag text, p_id bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT relance_api_text_cursor(p_tag, p_id::text)
$$;

CREATE OR REPLACE FUNCTION relance_api_cursor_id(p_tag text, p_cursor text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN k ~ '^[0-9]{1,18}$' THEN k::bigint END
      FROM relance_api_text_cursor_key(p_tag, p_cursor) k
$$;

-- The 400 answer to an after= that is not a cursor of list p_tag, or
-- NULL (none given, or a good one).
CREATE OR REPLACE FUNCTION relance_api_cursor_problem(p_tag text, p_after text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_after IS NOT NULL AND relance_api_text_cursor_key(p_tag, p_after) IS NULL
                THEN relance_api_problem(400, 'bad-request', 'Bad request', 'after is not a cursor this list gave')
           END
$$;

-- One page of list p_tag after the cursor p_after: {"data": [...],
-- "next": cursor | null} from the rows fetched in key order, p_limit + 1
-- at most (one more than the page says there is a next), as their keys
-- and documents. When p_after is not a cursor of the list, the answer is
-- its 400 problem instead, and relance_api_page_status says 400: a list
-- reads its rows with the bad cursor taken as none and throws them away,
-- rather than each list guarding its query.
CREATE OR REPLACE FUNCTION relance_api_page(p_tag text, p_after text, p_limit int, p_keys text[], p_docs json[])
RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(relance_api_cursor_problem(p_tag, p_after),
                    json_build_object(
                        'data', coalesce(array_to_json(p_docs[1:p_limit]), '[]'),
                        'next', CASE WHEN cardinality(p_docs) > p_limit
                                     THEN relance_api_text_cursor(p_tag, p_keys[p_limit]) END
                    )::text)
$$;

CREATE OR REPLACE FUNCTION relance_api_page_status(p_tag text, p_after text) RETURNS int
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN relance_api_cursor_problem(p_tag, p_after) IS NULL THEN 200 ELSE 400 END
$$;

-- ---- idempotency ----------------------------------------------------------

-- A POST with an Idempotency-Key, before it runs: 'new' (this request
-- runs it: recorded as running), 'running' (the first is still running:
-- 409), 'mismatch' (the key was used with another request: 422) or
-- 'done' (replay status, content_type and body). A record older than 24
-- hours counts as none; one left running for 2 minutes was abandoned (its
-- replica stopped): this request takes it over.
CREATE OR REPLACE FUNCTION relance_api_idempotency_begin(p_key_id text, p_idem_key text, p_hash bytea)
RETURNS TABLE (state text, status int, content_type text, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    r api_idempotency;
BEGIN
    INSERT INTO api_idempotency (key_id, idem_key, request_hash) VALUES (p_key_id, p_idem_key, p_hash)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN QUERY SELECT 'new'::text, NULL::int, NULL::text, NULL::text;
        RETURN;
    END IF;
    SELECT * INTO r FROM api_idempotency i WHERE i.key_id = p_key_id AND i.idem_key = p_idem_key FOR UPDATE;
    IF r.created_at < now() - interval '24 hours'
       OR (r.status IS NULL AND r.created_at < now() - interval '2 minutes') THEN
        UPDATE api_idempotency i SET request_hash = p_hash, created_at = now(), status = NULL, content_type = NULL,
                                     body = NULL
         WHERE i.key_id = p_key_id AND i.idem_key = p_idem_key;
        RETURN QUERY SELECT 'new'::text, NULL::int, NULL::text, NULL::text;
    ELSIF r.request_hash <> p_hash THEN
        RETURN QUERY SELECT 'mismatch'::text, NULL::int, NULL::text, NULL::text;
    ELSIF r.status IS NULL THEN
        RETURN QUERY SELECT 'running'::text, NULL::int, NULL::text, NULL::text;
    ELSE
        RETURN QUERY SELECT 'done'::text, r.status, r.content_type, r.body;
    END IF;
END $$;

-- The answer of a request that ran: kept for replays; a server-side
-- failure (5xx) is forgotten, so that a retry runs again.
CREATE OR REPLACE FUNCTION relance_api_idempotency_end(p_key_id text, p_idem_key text, p_status int,
                                                       p_content_type text, p_body text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_status >= 500 THEN
        DELETE FROM api_idempotency WHERE key_id = p_key_id AND idem_key = p_idem_key AND status IS NULL;
    ELSE
        UPDATE api_idempotency SET status = p_status, content_type = p_content_type, body = p_body
         WHERE key_id = p_key_id AND idem_key = p_idem_key AND status IS NULL;
    END IF;
END $$;

-- Records past their 24 hours, at most p_limit a call.
CREATE OR REPLACE FUNCTION relance_api_idempotency_prune(p_limit int) RETURNS int
LANGUAGE sql AS $$
    WITH old AS (SELECT key_id, idem_key FROM api_idempotency
                  WHERE created_at < now() - interval '24 hours' ORDER BY created_at LIMIT p_limit),
         gone AS (DELETE FROM api_idempotency i USING old
                   WHERE i.key_id = old.key_id AND i.idem_key = old.idem_key RETURNING 1)
    SELECT count(*)::int FROM gone
$$;

-- ---- contacts -------------------------------------------------------------

-- A contact as the API shows it: json, not jsonb, so that its members
-- keep the contract's order (id first) for the people reading answers.
CREATE OR REPLACE FUNCTION relance_api_contact_json(c contacts) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('id', c.id::text, 'email', c.email, 'external_id', c.crm_id,
                              'first_name', c.first_name, 'last_name', c.last_name, 'title', c.title,
                              'company', c.company, 'company_domain', c.company_domain, 'timezone', c.timezone,
                              'fields', c.fields, 'created_at', relance_api_time(c.created_at),
                              'updated_at', relance_api_time(c.updated_at))
$$;

-- The contact a path's {id} names: digits (its id), 'email:ADDRESS' (C
-- normalised the address) or 'ext:EXTERNAL_ID'. NULL when none, or when
-- it was erased (an erased contact has no external_id any more).
CREATE OR REPLACE FUNCTION relance_api_contact_id(p_ref text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_ref ~ '^[0-9]{1,18}$' THEN (SELECT id FROM contacts WHERE id = p_ref::bigint AND erased_at IS NULL)
        WHEN p_ref LIKE 'email:%' THEN (SELECT id FROM contacts WHERE email_key = lower(substr(p_ref, 7))
                                                                  AND erased_at IS NULL)
        WHEN p_ref LIKE 'ext:%' THEN (SELECT id FROM contacts WHERE crm_id = substr(p_ref, 5))
    END
$$;

-- Upserts contacts checked and normalised by C, through the CSV import's
-- staging table and rules (relance_contacts_import_apply): p_items is
-- [{index, email, external_id, first_name, last_name, title, company,
-- company_domain (as given, normalised), derived_domain (from the email,
-- NULL for free mail), timezone (canonical), fields}], absent or null
-- values leaving stored ones as they are. One row an item, by index:
-- status created, updated, conflict (conflict_ids: the contact of the
-- external_id, the one of the email) or invalid (detail says why); contact
-- (the contact as the API shows it) when p_contacts.
CREATE OR REPLACE FUNCTION relance_api_contacts_upsert(p_items jsonb, p_contacts boolean)
RETURNS TABLE (idx int, status text, id text, detail text, conflict_ids text[], contact json)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM relance_contacts_import_stage();
    INSERT INTO contacts_import (line, email, first_name, last_name, title, company, company_domain, derived_domain,
                                 timezone, crm_id, fields)
    SELECT x.index, x.email, x.first_name, x.last_name, x.title, x.company, x.company_domain, x.derived_domain,
           x.timezone, x.external_id, coalesce(jsonb_strip_nulls(x.fields), '{}')
      FROM jsonb_to_recordset(p_items) AS x (index bigint, email text, first_name text, last_name text, title text,
                                             company text, company_domain text, derived_domain text, timezone text,
                                             external_id text, fields jsonb);
    PERFORM relance_contacts_import_apply();
    -- Every row's outcome, read off the staging table in one pass: a row
    -- apply matched to no contact was inserted, its id read through
    -- email_key's index; the contact itself only when asked for (a bulk
    -- answer carries ids alone: reading 1,000 contacts back was a tenth
    -- of a batch's time).
    RETURN QUERY
    SELECT r.line::int,
           CASE WHEN r.reject IS NULL THEN CASE WHEN r.by_email IS NULL THEN 'created' ELSE 'updated' END
                WHEN r.conflict_ids IS NOT NULL THEN 'conflict' ELSE 'invalid' END,
           r.contact_id::text, r.reject, r.conflict_ids::text[],
           CASE WHEN p_contacts AND r.contact_id IS NOT NULL
                THEN (SELECT relance_api_contact_json(c) FROM contacts c WHERE c.id = r.contact_id) END
      FROM (SELECT i.line, i.by_email, i.reject, i.conflict_ids,
                   CASE WHEN i.reject IS NULL
                        THEN coalesce(i.by_email, (SELECT c.id FROM contacts c WHERE c.email_key = i.email_key))
                   END AS contact_id
              FROM contacts_import i) r
     ORDER BY r.line;
END $$;

-- GET /v1/contacts: one page in id order, after the cursor p_after (NULL:
-- from the start), with the filters that are not NULL. (status, body).
CREATE OR REPLACE FUNCTION relance_api_contacts_list(p_limit int, p_after text, p_email text, p_external_id text,
                                                     p_company_domain text, p_updated_since timestamptz)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT relance_api_page_status('contacts', p_after),
           relance_api_page('contacts', p_after, p_limit, array_agg(q.id::text ORDER BY q.id),
                            array_agg(q.doc ORDER BY q.id))
      FROM (SELECT c.id, relance_api_contact_json(c) AS doc FROM contacts c
             WHERE c.id > coalesce(relance_api_cursor_id('contacts', p_after), 0) AND c.erased_at IS NULL
               AND (p_email IS NULL OR c.email_key = lower(p_email))
               AND (p_external_id IS NULL OR c.crm_id = p_external_id)
               AND (p_company_domain IS NULL OR c.company_domain = lower(p_company_domain))
               AND (p_updated_since IS NULL OR c.updated_at >= p_updated_since)
             ORDER BY c.id LIMIT p_limit + 1) q;
END $$;

-- GET /v1/contacts/{id}: (status, body).
-- (PL/pgSQL: its statement's plan is kept per connection; an SQL
-- function is inlined and planned again at each call.)
CREATE OR REPLACE FUNCTION relance_api_contact_get(p_ref text)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT coalesce(max(200), 404),
           coalesce(max(relance_api_contact_json(c)::text),
                    relance_api_problem(404, 'not-found', 'Not found', 'no contact ' || p_ref))
      FROM contacts c WHERE c.id = relance_api_contact_id(p_ref);
END $$;

-- PATCH /v1/contacts/{id}: p_patch holds the members given, checked and
-- normalised by C (email, company_domain, timezone); a member set to null
-- clears the value (email cannot be), a custom field set to null is
-- removed, the others are merged. A held enrollment waiting for a field
-- resumes (relance_contact_changed). (status, body).
CREATE OR REPLACE FUNCTION relance_api_contact_patch(p_ref text, p_patch jsonb)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    c contacts;
    n contacts;
    v_other bigint;
    v_detail text;
BEGIN
    SELECT * INTO c FROM contacts x WHERE x.id = relance_api_contact_id(p_ref) FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, relance_api_problem(404, 'not-found', 'Not found', 'no contact ' || p_ref);
        RETURN;
    END IF;
    -- the email or the external_id of another contact
    SELECT x.id, CASE WHEN x.email_key = lower(p_patch->>'email')
                      THEN format('%s is the email of contact %s', p_patch->>'email', x.id)
                      ELSE format('external_id %s belongs to contact %s', p_patch->>'external_id', x.id) END
      INTO v_other, v_detail
      FROM contacts x
     WHERE x.id <> c.id AND (x.email_key = lower(p_patch->>'email') OR x.crm_id = p_patch->>'external_id')
     LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT 409, relance_api_problem(409, 'conflict', 'Conflict', v_detail,
            jsonb_build_object('contact_ids', jsonb_build_array(c.id::text, v_other::text)));
        RETURN;
    END IF;
    n := c;
    IF p_patch ? 'email' THEN n.email := p_patch->>'email'; END IF;
    IF p_patch ? 'external_id' THEN n.crm_id := p_patch->>'external_id'; END IF;
    IF p_patch ? 'first_name' THEN n.first_name := p_patch->>'first_name'; END IF;
    IF p_patch ? 'last_name' THEN n.last_name := p_patch->>'last_name'; END IF;
    IF p_patch ? 'title' THEN n.title := p_patch->>'title'; END IF;
    IF p_patch ? 'company' THEN n.company := p_patch->>'company'; END IF;
    IF p_patch ? 'company_domain' THEN n.company_domain := p_patch->>'company_domain'; END IF;
    IF p_patch ? 'timezone' THEN n.timezone := p_patch->>'timezone'; END IF;
    IF p_patch ? 'fields' THEN n.fields := jsonb_strip_nulls(c.fields || (p_patch->'fields')); END IF;
    -- a contact whose values do not change is not rewritten (as the import)
    IF (n.email, n.crm_id, n.first_name, n.last_name, n.title, n.company, n.company_domain, n.timezone, n.fields)
       IS DISTINCT FROM
       (c.email, c.crm_id, c.first_name, c.last_name, c.title, c.company, c.company_domain, c.timezone, c.fields) THEN
        UPDATE contacts x
           SET email = n.email, crm_id = n.crm_id, first_name = n.first_name, last_name = n.last_name,
               title = n.title, company = n.company, company_domain = n.company_domain, timezone = n.timezone,
               fields = n.fields, updated_at = now()
         WHERE x.id = c.id;
        PERFORM relance_event('contact.updated', now(), c.id, NULL, NULL, NULL);
    END IF;
    RETURN QUERY SELECT 200, relance_api_contact_json(x)::text FROM contacts x WHERE x.id = c.id;
EXCEPTION WHEN unique_violation THEN
    RETURN QUERY SELECT 409, relance_api_problem(409, 'conflict', 'Conflict',
                                                 'another contact has this email or external_id');
END $$;
