-- webhooks: the endpoints a CRM registers, the deliveries owed to them,
-- and the statements of service/webhooks.c (delivery), api_webhooks.c
-- (the /v1/webhooks API) and cmd/webhooks.c (the command line).
--
--   webhooks(id, source 'api'|'config', name (config), url, types text[]
--            ('{}': all), description, enabled, secret (NULL for
--            config), previous_secret, previous_until, failing_since,
--            disabled_at, disabled_reason, created_at, updated_at)
--   webhook_deliveries(id, webhook_id, event_id, state 'pending'|
--            'delivered'|'failed', attempts, next_at, claimed_by,
--            claimed_until, last_status, last_error, last_at,
--            delivered_at)
--
-- The outbox: the events' statement trigger below writes one delivery
-- per event and enabled endpoint that wants its type, in the transaction
-- that wrote the event, and wakes the replicas (NOTIFY relance_webhooks,
-- sent at commit). A delivery is claimed by one replica at a time
-- (FOR UPDATE SKIP LOCKED, then claimed_until: a replica that dies leaves
-- its claims to the others once that passes), sent, and its outcome
-- recorded: at least once, never lost.
--
-- Two clocks. next_at, failing_since and the rotation's previous_until
-- are relance's (p_now: the test clock moves them), claimed_until is the
-- database's real one (a claim is about the transfer's real time).

-- The retry schedule after the 1st, 2nd, ... failed attempt (about:
-- each is spread by +-10 % so endpoints that fail together do not come
-- back together); the attempt after the last is not made: the delivery
-- has failed.
CREATE OR REPLACE FUNCTION relance_webhook_retry_after(p_attempts int) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT (ARRAY['5 seconds', '5 minutes', '30 minutes', '2 hours', '5 hours', '10 hours',
                  '10 hours']::interval[])[p_attempts]
$$;

-- ---- the outbox ----------------------------------------------------------

CREATE OR REPLACE FUNCTION relance_webhooks_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event_id)
    SELECT w.id, n.id
      FROM relance_new_events n
      JOIN webhooks w ON w.enabled AND (w.types = '{}' OR n.kind = ANY (w.types));
    IF FOUND THEN
        PERFORM pg_notify('relance_webhooks', '');
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER events_webhooks AFTER INSERT ON events
    REFERENCING NEW TABLE AS relance_new_events
    FOR EACH STATEMENT EXECUTE FUNCTION relance_webhooks_fan_out();

-- ---- delivery (service/webhooks.c) -----------------------------------------

-- One round trip of the delivery loop: records the outcomes of the
-- transfers that ended (p_done: delivery ids; p_status: the HTTP status,
-- 0 when none came, -1 when the request was never made; p_error: why, or
-- NULL), then claims what is due for
-- this replica: per enabled endpoint, up to p_per_endpoint less what it
-- still has in flight there (p_busy_ids / p_busy: endpoint ids and their
-- counts). Each claimed row comes with what its request needs: the URL,
-- the secrets (the previous one too while a rotation lasts; a config
-- endpoint's are the replica's own, by name), and the body: the event as
-- the feed shows it. Then a row with delivery_id NULL and next_at: when
-- the earliest pending delivery of an enabled endpoint is due (NULL:
-- none), for the loop's timer.
CREATE OR REPLACE FUNCTION relance_webhooks_cycle(p_replica text, p_now timestamptz, p_done bigint[],
                                                  p_status int[], p_error text[], p_busy_ids bigint[],
                                                  p_busy int[], p_per_endpoint int, p_lease interval)
RETURNS TABLE (delivery_id bigint, webhook_id bigint, name text, url text, secret text, previous_secret text,
               event_id bigint, attempts int, body text, next_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_ids bigint[];
BEGIN
    IF cardinality(p_done) > 0 THEN
        PERFORM relance_webhooks_record(p_replica, p_now, p_done, p_status, p_error);
    END IF;
    -- in steps, each on a primary key: as one statement the planner could
    -- not tell how many rows the LATERAL would give, and joined the queue
    -- and the events by scanning both
    SELECT array_agg(d.id) INTO v_ids
      FROM webhooks w
      CROSS JOIN LATERAL (
            SELECT d.id
              FROM webhook_deliveries d
             WHERE d.webhook_id = w.id AND d.state = 'pending' AND d.next_at <= p_now
               AND (d.claimed_until IS NULL OR d.claimed_until < now())
             ORDER BY d.next_at, d.id
             LIMIT greatest(0, p_per_endpoint - coalesce(
                       (SELECT b.n FROM unnest(p_busy_ids, p_busy) b(id, n) WHERE b.id = w.id), 0))
               FOR UPDATE OF d SKIP LOCKED) d
     WHERE w.enabled;
    -- claimed and read back in one pass over the rows
    RETURN QUERY
    WITH c AS (
        UPDATE webhook_deliveries d
           SET claimed_by = p_replica, claimed_until = now() + p_lease
          FROM unnest(v_ids) u(id)
         WHERE d.id = u.id
        RETURNING d.id, d.webhook_id, d.event_id, d.attempts)
    SELECT c.id, w.id, w.name, w.url, w.secret,
           CASE WHEN w.previous_until > p_now THEN w.previous_secret END,
           e.id, c.attempts,
           relance_api_event_json(e.id, e.kind, e.occurred_at, e.data, e.seq)::text,
           NULL::timestamptz
      FROM c
      JOIN webhooks w ON w.id = c.webhook_id
      JOIN events e ON e.id = c.event_id
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           (SELECT min(n.next_at)
              FROM webhooks w
              CROSS JOIN LATERAL (SELECT d.next_at FROM webhook_deliveries d
                                   WHERE d.webhook_id = w.id AND d.state = 'pending'
                                     AND (d.claimed_until IS NULL OR d.claimed_until < now())
                                   ORDER BY d.next_at LIMIT 1) n
             WHERE w.enabled);
END $$;

-- The outcomes of ended transfers (see relance_webhooks_cycle). Only
-- what this replica still holds the claim of: a transfer that outlived
-- its claim belongs to whoever claimed it since.
--   -1:  never sent (the replica learnt the endpoint was gone, or it
--        was stopping): the claim is given back, the attempt not counted.
--   2xx: delivered; the endpoint is healthy again.
--   410: the endpoint asked to be forgotten: disabled now (the delivery
--        stays pending: enabling it again resumes there).
--   else (another status, or none: timeout, refused, TLS...): the next
--        attempt per relance_webhook_retry_after, or failed after the
--        last; an endpoint failing for 5 days on end is disabled.
-- A disabled endpoint gets its webhook.disabled event, which goes to the
-- others.
CREATE OR REPLACE FUNCTION relance_webhooks_record(p_replica text, p_now timestamptz, p_done bigint[],
                                                   p_status int[], p_error text[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- The outcomes (C sends each delivery once), each row read through
    -- the primary key from them: the unnest drives a nested loop of index
    -- probes. (array_position per row, as before, was quadratic: a tenth
    -- of a 500-row cycle.) Only the rows still claimed here: "state NOT IN
    -- ('delivered', 'failed')" is "state = 'pending'" under the table's
    -- CHECK, written so that the planner does not take the partial index
    -- of due deliveries, which it would read whole for the ids.
    WITH o AS (
        SELECT d.id, u.status, u.error
          FROM unnest(p_done, p_status, p_error) AS u(id, status, error)
          JOIN webhook_deliveries d ON d.id = u.id
         WHERE d.claimed_by = p_replica AND d.state NOT IN ('delivered', 'failed')
    ), upd AS (
        UPDATE webhook_deliveries d
           SET state = CASE WHEN o.status BETWEEN 200 AND 299 THEN 'delivered'
                            WHEN o.status = 410 THEN 'pending'
                            WHEN relance_webhook_retry_after(d.attempts + 1) IS NULL THEN 'failed'
                            ELSE 'pending' END,
               attempts = d.attempts + 1,
               next_at = CASE WHEN o.status BETWEEN 200 AND 299 OR o.status = 410 THEN d.next_at
                              ELSE p_now + coalesce(relance_webhook_retry_after(d.attempts + 1), '0')
                                           * (0.9 + 0.2 * random()) END,
               delivered_at = CASE WHEN o.status BETWEEN 200 AND 299 THEN p_now END,
               last_status = nullif(o.status, 0),
               last_error = left(o.error, 300),
               last_at = p_now,
               claimed_by = NULL,
               claimed_until = NULL
          FROM o
         -- the claim tested again here, not only in o: a row another
         -- replica claimed meanwhile (its claim lapsed) is re-read under
         -- the UPDATE's own conditions, and must be left to it
         WHERE d.id = o.id AND o.status >= 0 AND d.claimed_by = p_replica AND d.state NOT IN ('delivered', 'failed')
        RETURNING d.webhook_id, o.status
    ), untried AS (
        UPDATE webhook_deliveries d SET claimed_by = NULL, claimed_until = NULL
          FROM o
         WHERE d.id = o.id AND o.status < 0 AND d.claimed_by = p_replica AND d.state NOT IN ('delivered', 'failed')
    ), per AS (
        SELECT upd.webhook_id,
               bool_or(upd.status BETWEEN 200 AND 299) AS ok,
               bool_or(upd.status = 410) AS gone,
               bool_or(NOT (upd.status BETWEEN 200 AND 299)) AS failed
          FROM upd GROUP BY upd.webhook_id
    )
    UPDATE webhooks w
       SET failing_since = CASE WHEN per.ok THEN NULL ELSE coalesce(w.failing_since, p_now) END,
           enabled = w.enabled AND NOT per.gone,
           disabled_at = CASE WHEN per.gone AND w.enabled THEN p_now ELSE w.disabled_at END,
           disabled_reason = CASE WHEN per.gone AND w.enabled THEN 'the endpoint answered 410 Gone'
                                  ELSE w.disabled_reason END,
           updated_at = p_now
      FROM per
     WHERE w.id = per.webhook_id;

    -- 5 days of failures on end
    UPDATE webhooks w
       SET enabled = false, disabled_at = p_now, updated_at = p_now,
           disabled_reason = 'every delivery failed for 5 days'
     WHERE w.enabled AND w.failing_since <= p_now - interval '5 days'
       AND w.id IN (SELECT d.webhook_id FROM webhook_deliveries d WHERE d.id = ANY (p_done));

    INSERT INTO events (kind, occurred_at, data)
    SELECT 'webhook.disabled', p_now,
           jsonb_build_object('webhook', jsonb_build_object('id', w.id::text, 'url', w.url, 'name', w.name),
                              'reason', w.disabled_reason)
      FROM webhooks w
     WHERE w.disabled_at = p_now AND NOT w.enabled
       AND w.id IN (SELECT d.webhook_id FROM webhook_deliveries d WHERE d.id = ANY (p_done));
END $$;

-- At a replica's start: the claims its previous process left (same
-- replica name only when a test fixes it; a claim's lease frees the rest)
-- are given back at once.
CREATE OR REPLACE FUNCTION relance_webhooks_release(p_replica text) RETURNS int
LANGUAGE sql AS $$
    WITH r AS (
        UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL
         WHERE claimed_by = p_replica AND state = 'pending'
        RETURNING 1)
    SELECT count(*)::int FROM r
$$;

-- The endpoints the configuration declares (p_names, p_urls, p_types:
-- each a comma-separated list, '' for all, p_descriptions), made to match
-- it: added, changed, and those no longer declared disabled (their
-- deliveries kept, should they come back). An endpoint disabled by 410 or
-- failures stays so until the configuration changes it.
CREATE OR REPLACE FUNCTION relance_webhooks_sync_config(p_names text[], p_urls text[], p_types text[],
                                                        p_descriptions text[], p_now timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhooks AS w (source, name, url, types, description, enabled, created_at, updated_at)
    SELECT 'config', c.name, c.url, coalesce(string_to_array(nullif(c.types, ''), ','), '{}'), c.description,
           true, p_now, p_now
      FROM unnest(p_names, p_urls, p_types, p_descriptions) c(name, url, types, description)
    ON CONFLICT (name) DO UPDATE
       SET url = excluded.url, types = excluded.types, description = excluded.description,
           enabled = CASE WHEN (w.url, w.types, w.description) IS DISTINCT FROM
                               (excluded.url, excluded.types, excluded.description)
                          THEN true ELSE w.enabled END,
           updated_at = p_now
     WHERE (w.url, w.types, w.description, w.source) IS DISTINCT FROM
           (excluded.url, excluded.types, excluded.description, 'config');
    UPDATE webhooks SET enabled = false, disabled_at = p_now, updated_at = p_now,
                        disabled_reason = 'no longer in the configuration'
     WHERE source = 'config' AND enabled AND NOT (name = ANY (p_names));
END $$;

-- ---- the API and the command line -------------------------------------------

CREATE OR REPLACE FUNCTION relance_api_webhook_json(w webhooks) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', w.id::text, 'url', w.url, 'types', to_jsonb(w.types),
                              'description', w.description, 'enabled', w.enabled,
                              'source', w.source, 'name', w.name,
                              'disabled_reason', CASE WHEN NOT w.enabled THEN w.disabled_reason END,
                              'failing_since', relance_api_time(w.failing_since),
                              'created_at', relance_api_time(w.created_at),
                              'updated_at', relance_api_time(w.updated_at))
$$;

CREATE OR REPLACE FUNCTION relance_api_webhook_not_found(p_id text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT relance_api_problem(404, 'not-found', 'Not found', format('no webhook %s', p_id))
$$;

-- GET /v1/webhooks: one page in id order.
CREATE OR REPLACE FUNCTION relance_api_webhooks_list(p_limit int, p_after text)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT relance_api_page_status('webhooks', p_after),
           relance_api_page('webhooks', p_after, p_limit, array_agg(q.id::text ORDER BY q.id),
                            array_agg(q.doc ORDER BY q.id))
      FROM (SELECT w.id, relance_api_webhook_json(w)::json AS doc
              FROM webhooks w
             WHERE w.id > coalesce(relance_api_cursor_id('webhooks', p_after), 0)
             ORDER BY w.id LIMIT p_limit + 1) q;
END $$;

CREATE OR REPLACE FUNCTION relance_api_webhook_get(p_id bigint)
RETURNS TABLE (status int, body text)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(s.status, 404), coalesce(s.body, relance_api_webhook_not_found(p_id::text))
      FROM (SELECT 1) one
      LEFT JOIN (SELECT 200 AS status, relance_api_webhook_json(w)::text AS body FROM webhooks w WHERE w.id = p_id) s
        ON true
$$;

-- The 422 answer to event types not in the catalogue (event_types), one
-- error each at /types/<index> (p_types in the order the request gave
-- them), or NULL when all are. SQL decides it, not C: the catalogue is a
-- table a later migration adds to (tracking's message.opened), and a copy
-- of it in C would drift.
CREATE OR REPLACE FUNCTION relance_api_webhook_types_problem(p_types text[]) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT relance_api_problem(422, 'validation', 'Invalid webhook', 'types: not every one is an event type',
               jsonb_build_object('errors', jsonb_agg(jsonb_build_object(
                   'pointer', '/types/' || (t.i - 1),
                   'message', format('%s is not an event type (GET /v1/events lists them in its schema)', t.type))
                   ORDER BY t.i)))
      FROM unnest(p_types) WITH ORDINALITY t(type, i)
     WHERE NOT EXISTS (SELECT 1 FROM event_types c WHERE c.type = t.type)
    HAVING count(*) > 0
$$;

-- Types as stored: each once, in the order first given.
CREATE OR REPLACE FUNCTION relance_webhook_types_clean(p_types text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(t.type ORDER BY t.i), '{}')
      FROM (SELECT type, min(i) AS i FROM unnest(p_types) WITH ORDINALITY u(type, i) GROUP BY type) t
$$;

-- POST /v1/webhooks: C checked the members (the URL against the policy)
-- and made the secret; the types are checked here (422). 201 with the
-- endpoint and its secret, the only time it is shown.
CREATE OR REPLACE FUNCTION relance_api_webhook_create(p_url text, p_types text[], p_description text,
                                                      p_enabled boolean, p_secret text, p_now timestamptz)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_bad text := relance_api_webhook_types_problem(p_types);
    w webhooks;
BEGIN
    IF v_bad IS NOT NULL THEN
        RETURN QUERY SELECT 422, v_bad;
        RETURN;
    END IF;
    INSERT INTO webhooks (source, url, types, description, enabled, secret, created_at, updated_at)
    VALUES ('api', p_url, relance_webhook_types_clean(p_types), p_description, p_enabled, p_secret, p_now, p_now)
    RETURNING * INTO w;
    RETURN QUERY SELECT 201, (relance_api_webhook_json(w) || jsonb_build_object('secret', w.secret))::text;
END $$;

-- PATCH /v1/webhooks/{id}: the members given (C checked them; the types
-- are checked here: 422). Enabling an endpoint clears why it was
-- disabled and its failing streak. A config endpoint is the
-- configuration's: 409.
CREATE OR REPLACE FUNCTION relance_api_webhook_patch(p_id bigint, p_patch jsonb, p_now timestamptz)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    w webhooks;
    v_types text[];
    v_bad text;
BEGIN
    SELECT * INTO w FROM webhooks WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, relance_api_webhook_not_found(p_id::text);
        RETURN;
    END IF;
    IF w.source = 'config' THEN
        RETURN QUERY SELECT 409, relance_api_problem(409, 'conflict', 'Conflict',
                                                     format('webhook %s is declared by the configuration (%s): change it there',
                                                            p_id, w.name));
        RETURN;
    END IF;
    IF p_patch ? 'types' THEN
        v_types := ARRAY(SELECT jsonb_array_elements_text(p_patch->'types'));
        v_bad := relance_api_webhook_types_problem(v_types);
        IF v_bad IS NOT NULL THEN
            RETURN QUERY SELECT 422, v_bad;
            RETURN;
        END IF;
    END IF;
    UPDATE webhooks v
       SET url = coalesce(p_patch->>'url', v.url),
           types = CASE WHEN p_patch ? 'types' THEN relance_webhook_types_clean(v_types) ELSE v.types END,
           description = coalesce(p_patch->>'description', v.description),
           enabled = coalesce((p_patch->>'enabled')::boolean, v.enabled),
           disabled_at = CASE WHEN (p_patch->>'enabled')::boolean THEN NULL
                              WHEN (p_patch->>'enabled')::boolean = false AND v.enabled THEN p_now
                              ELSE v.disabled_at END,
           disabled_reason = CASE WHEN (p_patch->>'enabled')::boolean THEN NULL
                                  WHEN (p_patch->>'enabled')::boolean = false AND v.enabled THEN 'disabled by the API'
                                  ELSE v.disabled_reason END,
           failing_since = CASE WHEN (p_patch->>'enabled')::boolean THEN NULL ELSE v.failing_since END,
           updated_at = p_now
     WHERE v.id = p_id
    RETURNING * INTO w;
    RETURN QUERY SELECT 200, relance_api_webhook_json(w)::text;
END $$;

-- DELETE /v1/webhooks/{id}: the endpoint and what it was owed.
CREATE OR REPLACE FUNCTION relance_api_webhook_delete(p_id bigint)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    w webhooks;
BEGIN
    SELECT * INTO w FROM webhooks WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, relance_api_webhook_not_found(p_id::text);
    ELSIF w.source = 'config' THEN
        RETURN QUERY SELECT 409, relance_api_problem(409, 'conflict', 'Conflict',
                                                     format('webhook %s is declared by the configuration (%s): remove it there',
                                                            p_id, w.name));
    ELSE
        DELETE FROM webhooks WHERE id = p_id;
        RETURN QUERY SELECT 200, relance_api_webhook_json(w)::text;
    END IF;
END $$;

-- POST /v1/webhooks/{id}/rotate-secret: the new secret (made by C)
-- signs from now on; the old one signs too for 24 hours, so a consumer
-- can switch without losing a delivery. 200 with the new secret.
CREATE OR REPLACE FUNCTION relance_api_webhook_rotate(p_id bigint, p_secret text, p_now timestamptz)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    w webhooks;
BEGIN
    UPDATE webhooks v
       SET previous_secret = v.secret, previous_until = p_now + interval '24 hours', secret = p_secret,
           updated_at = p_now
     WHERE v.id = p_id AND v.source = 'api'
    RETURNING * INTO w;
    IF FOUND THEN
        RETURN QUERY SELECT 200, (relance_api_webhook_json(w)
                                  || jsonb_build_object('secret', w.secret,
                                                        'previous_secret_valid_until',
                                                        relance_api_time(w.previous_until)))::text;
    ELSIF EXISTS (SELECT 1 FROM webhooks WHERE id = p_id) THEN
        RETURN QUERY SELECT 409, relance_api_problem(409, 'conflict', 'Conflict',
                                                     format('webhook %s takes its secret from the configuration', p_id));
    ELSE
        RETURN QUERY SELECT 404, relance_api_webhook_not_found(p_id::text);
    END IF;
END $$;

-- POST /v1/webhooks/{id}/replay: every event since p_since of the
-- endpoint's types is owed to it again (delivered or failed ones too),
-- due now. 202 with how many.
CREATE OR REPLACE FUNCTION relance_api_webhook_replay(p_id bigint, p_since timestamptz)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    w webhooks;
    n int;
BEGIN
    SELECT * INTO w FROM webhooks WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, relance_api_webhook_not_found(p_id::text);
        RETURN;
    END IF;
    INSERT INTO webhook_deliveries AS d (webhook_id, event_id)
    SELECT w.id, e.id FROM events e
     WHERE e.occurred_at >= p_since AND (w.types = '{}' OR e.kind = ANY (w.types))
    ON CONFLICT (webhook_id, event_id) DO UPDATE
       SET state = 'pending', attempts = 0, next_at = '-infinity', last_status = NULL, last_error = NULL,
           delivered_at = NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('relance_webhooks', '');
    END IF;
    RETURN QUERY SELECT 202, json_build_object('queued', n)::text;
END $$;

-- `relance webhooks deliveries ID` and GET /v1/webhooks/{id}/deliveries:
-- the latest deliveries first.
CREATE OR REPLACE FUNCTION relance_webhook_deliveries(p_id bigint, p_limit int)
RETURNS TABLE (id bigint, event_id bigint, type text, state text, attempts int, last_status int,
               last_error text, last_at timestamptz, next_at timestamptz, delivered_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT d.id, d.event_id, e.kind, d.state, d.attempts, d.last_status, d.last_error, d.last_at,
           CASE WHEN d.state = 'pending' THEN d.next_at END, d.delivered_at
      FROM webhook_deliveries d JOIN events e ON e.id = d.event_id
     WHERE d.webhook_id = p_id
     ORDER BY d.id DESC LIMIT p_limit
$$;

-- GET /v1/webhooks/{id}/deliveries: the latest p_limit, as
-- relance_webhook_deliveries (the command line's) lists them.
CREATE OR REPLACE FUNCTION relance_api_webhook_deliveries(p_id bigint, p_limit int)
RETURNS TABLE (status int, body text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE id = p_id) THEN
        RETURN QUERY SELECT 404, relance_api_webhook_not_found(p_id::text);
        RETURN;
    END IF;
    RETURN QUERY
    SELECT 200, json_build_object('data', coalesce(json_agg(json_build_object(
               'id', d.id::text, 'event_id', d.event_id::text, 'type', d.type, 'state', d.state,
               'attempts', d.attempts, 'last_status', d.last_status, 'last_error', d.last_error,
               'last_at', relance_api_time(d.last_at), 'next_at', relance_api_time(d.next_at),
               'delivered_at', relance_api_time(d.delivered_at)) ORDER BY d.id DESC), '[]'))::text
      FROM relance_webhook_deliveries(p_id, p_limit) d;
END $$;

-- `relance webhooks list`: every endpoint in id order, with why it is
-- disabled and since when it fails (never its secret).
CREATE OR REPLACE FUNCTION relance_webhooks_list()
RETURNS TABLE (id bigint, source text, name text, url text, types text[], enabled boolean, disabled_reason text,
               disabled_at timestamptz, failing_since timestamptz, description text)
LANGUAGE sql STABLE AS $$
    SELECT w.id, w.source, w.name, w.url, w.types, w.enabled, w.disabled_reason, w.disabled_at, w.failing_since,
           w.description
      FROM webhooks w ORDER BY w.id
$$;

-- POST /v1/webhooks/{id}/test?type=: what relance sends the endpoint, at
-- once and outside the outbox: an example event of p_type (by default
-- the endpoint's first type, else reply.received) with the id p_test_id,
-- data {"test": true}. 200 with the event, the URL and the secrets (NULL
-- for a config endpoint: the replica's own, by name; the previous one
-- while a rotation lasts, as deliveries sign); 404, or 400 for a
-- type outside the catalogue (as GET /v1/events?types=). The event is not stored: it is in no feed.
CREATE OR REPLACE FUNCTION relance_api_webhook_test(p_id bigint, p_type text, p_test_id text, p_now timestamptz)
RETURNS TABLE (status int, body text, url text, name text, secret text, previous_secret text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    w webhooks;
    v_type text;
BEGIN
    SELECT * INTO w FROM webhooks WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 404, relance_api_webhook_not_found(p_id::text), NULL::text, NULL::text, NULL::text,
                            NULL::text;
        RETURN;
    END IF;
    v_type := coalesce(p_type, w.types[1], 'reply.received');
    IF NOT EXISTS (SELECT 1 FROM event_types t WHERE t.type = v_type) THEN
        RETURN QUERY SELECT 400, relance_api_problem(400, 'bad-request', 'Bad request',
                                                     format('type: %s is not an event type', v_type)),
                            NULL::text, NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT 200, json_build_object('id', p_test_id, 'type', v_type, 'occurred_at', relance_api_time(p_now),
                                  'data', json_build_object('test', true))::text,
           w.url, w.name, w.secret, CASE WHEN w.previous_until > p_now THEN w.previous_secret END;
END $$;
