-- webhooks: the endpoints a CRM registers, the deliveries owed to them,
-- and the statements of service/webhooks.c (delivery), api_webhooks.c
-- (the /v1/webhooks API) and cmd/webhooks.c (the command line).
--
--   webhooks(id, source 'api'|'config', name (config), url, types text[]
--            ('{}': all), description, enabled, secret (NULL for
--            config), previous_secret, previous_until, failing_since,
--            disabled_at, disabled_reason, created_at, updated_at)
--   webhook_deliveries(id, webhook_id, event_id, state 'pending'|
--            'delivered'|'failed', attempts, next_at, last_status,
--            last_error, last_at, delivered_at)
--   webhook_delivered(webhook_id, delivered_at, last_id, ids[], event_ids[],
--            attempts[], statuses[]): per endpoint and cycle, what it
--            delivered there
--
-- The outbox: the events' statement trigger below writes one delivery
-- per event and enabled endpoint that wants its type, in the transaction
-- that wrote the event, and wakes the replicas (NOTIFY relance_webhooks,
-- sent at commit). A delivery is claimed by one replica at a time, sent,
-- and its outcome recorded: at least once, never lost.
--
-- A claim is a session advisory lock on the delivery's key
-- (relance_webhook_lock_key), taken with pg_try_advisory_lock on the
-- replica's background connection: it writes nothing, other replicas
-- skip what they cannot lock, and PostgreSQL gives it back the moment
-- that connection ends, so a replica that dies (or loses its connection)
-- leaves nothing to lapse. It is given back by the cycle after the one
-- that recorded its outcome, never in the same statement: the outcome
-- must be committed before another replica can lock the row, or it
-- could read it still pending and send it again. A delivered one is
-- deleted and noted in webhook_delivered, in one row per endpoint and
-- cycle (a delete touches no index; the update it replaces went into
-- every one); a failed attempt updates its row with the next attempt's
-- time.
--
-- next_at, failing_since and the rotation's previous_until are relance's
-- clock (p_now: the test clock moves them).

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

-- The advisory lock key of a delivery's claim; the top bits keep it
-- apart from relance's other advisory locks (small constants and
-- hashtext values).
CREATE OR REPLACE FUNCTION relance_webhook_lock_key(p_id bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (1::bigint << 62) | p_id
$$;

-- One round trip of the delivery loop, on the replica's background
-- connection (the claims are its session's locks):
-- 1. gives back the claims of p_unlock (outcomes the last cycle recorded,
--    committed since, or claims never sent);
-- 2. records the outcomes of the transfers that ended (p_done: delivery
--    ids; p_status: the HTTP status, 0 when none came, -1 when the
--    request was never made; p_error: why, or NULL);
-- 3. claims what is due: per enabled endpoint, up to its share less what
--    this replica still holds there (p_busy_ids / p_busy: endpoint ids
--    and their counts), from p_after there on (the greatest id it
--    claimed among deliveries never tried, due since '-infinity'; 0:
--    from the start), skipping p_held (claims this session holds
--    already: a second lock would outlive the one unlock; a JSON object
--    whose keys are their ids, so that each row is looked up in it by a
--    binary search rather than compared with each). The share is
--    p_per_endpoint, less when p_total would not cover every enabled
--    endpoint, and never under p_min; whatever the shares, the claims a
--    replica holds (p_busy) stay within p_total, the endpoints taken in a
--    random order when they would not: it bounds the locks a replica
--    holds, which PostgreSQL's lock table must find room for.
-- The rows, in this order:
-- - per endpoint claimed at (still enabled): delivery_id NULL, and what
--   its requests need: the URL, the secrets (the previous one too while a
--   rotation lasts; a config endpoint's are the replica's own, by name);
-- - per claim: delivery_id, webhook_id, event_id, attempts and the body,
--   the event as the feed shows it, and fresh (never tried: due since
--   '-infinity', so p_after may skip it). A claim whose body is NULL, or whose
--   endpoint has no row above, was locked but is no longer owed (another
--   replica delivered it meanwhile, or its endpoint went): give it back;
-- - delivery_id and webhook_id NULL: next_at (when the earliest pending
--   delivery of an enabled endpoint is due, NULL: none; claimed ones
--   count; looked up only when some endpoint got less than it wanted,
--   else NULL: its requests ending bring the next cycle) and hold (the
--   share used).
CREATE OR REPLACE FUNCTION relance_webhooks_cycle(p_now timestamptz, p_unlock bigint[], p_done bigint[],
                                                  p_status int[], p_error text[], p_held jsonb,
                                                  p_busy_ids bigint[], p_busy int[], p_after bigint[],
                                                  p_per_endpoint int, p_total int, p_min int)
RETURNS TABLE (delivery_id bigint, webhook_id bigint, name text, url text, secret text, previous_secret text,
               event_id bigint, attempts int, body text, next_at timestamptz, hold int, fresh boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_ids bigint[];
    v_eps bigint[];
    v_wants int[];
    v_after bigint[];
    v_share int;
    v_room int;
BEGIN
    IF cardinality(p_unlock) > 0 THEN
        PERFORM pg_advisory_unlock(relance_webhook_lock_key(u.id)) FROM unnest(p_unlock) u(id);
    END IF;
    IF cardinality(p_done) > 0 THEN
        PERFORM relance_webhooks_record(p_now, p_done, p_status, p_error);
    END IF;
    SELECT greatest(p_min, least(p_per_endpoint, p_total / greatest(count(*), 1)))::int INTO v_share
      FROM webhooks wh WHERE wh.enabled;
    -- what each enabled endpoint wants (its share less what it holds),
    -- and where its claims start, in a random order
    SELECT coalesce(array_agg(x.id ORDER BY x.r), '{}'), coalesce(array_agg(x.want ORDER BY x.r), '{}'),
           coalesce(array_agg(x.after ORDER BY x.r), '{}')
      INTO v_eps, v_wants, v_after
      FROM (SELECT wh.id, greatest(0, v_share - coalesce(b.n, 0)) AS want, coalesce(b.after, 0) AS after,
                   random() AS r
              FROM webhooks wh
              LEFT JOIN unnest(p_busy_ids, p_busy, p_after) b(id, n, after) ON b.id = wh.id
             WHERE wh.enabled) x;
    -- (an endpoint that answered 410 and is not recorded yet counts as
    -- full, with a huge p_busy: only its share is counted here)
    SELECT greatest(0, p_total - coalesce(sum(least(b.n, v_share)), 0))::int INTO v_room
      FROM unnest(p_busy) b(n);
    -- Claimed in each endpoint's order, on its index of due deliveries,
    -- after the fresh ones this replica claimed there already (which it
    -- holds, mostly: reading past them cost as much as the claim). A
    -- fresh one behind them that it does not hold (another replica gave
    -- it back) waits for a claim from the start, which webhooks.c makes
    -- often. A lock taken is a claim, so it must only be tried on rows this
    -- replica will send: the lock is the filter of a subquery that reads
    -- the candidates one by one, and the LIMIT above it stops reading (and
    -- locking) at the endpoint's want; rows other replicas hold fail the
    -- lock and are passed over, at most p_total of them. (A volatile
    -- filter is never pushed into a subquery, and one with a LIMIT is
    -- never merged into its query.)
    SELECT coalesce(array_agg(x.id), '{}'), coalesce(array_agg(DISTINCT x.webhook_id), '{}') INTO v_ids, v_eps
      FROM (
    SELECT c.id, w.id AS webhook_id
      FROM unnest(v_eps, v_wants, v_after) w(id, want, after)
      CROSS JOIN LATERAL (
            SELECT s.id
              FROM (SELECT d.id FROM webhook_deliveries d
                     WHERE d.webhook_id = w.id AND d.state = 'pending' AND d.next_at <= p_now
                       AND (d.next_at, d.id) > ('-infinity'::timestamptz, w.after)
                       AND NOT p_held ? d.id::text
                     ORDER BY d.next_at, d.id
                     LIMIT w.want + p_total) s
             WHERE pg_try_advisory_lock(relance_webhook_lock_key(s.id))
             LIMIT w.want) c
     WHERE w.want > 0
     LIMIT v_room) x;
    RETURN QUERY
    SELECT NULL::bigint, w.id, w.name, w.url, w.secret,
           CASE WHEN w.previous_until > p_now THEN w.previous_secret END,
           NULL::bigint, NULL::int, NULL::text, NULL::timestamptz, NULL::int, NULL::boolean
      FROM webhooks w
     WHERE w.id = ANY (v_eps) AND w.enabled;
    -- Read back with this statement's snapshot, newer than the one the
    -- candidates were read with: a row another replica recorded and gave
    -- back in between is seen as it now is, and given back here.
    RETURN QUERY
    SELECT u.id, d.webhook_id, NULL::text, NULL::text, NULL::text, NULL::text, d.event_id, d.attempts,
           CASE WHEN d.state = 'pending' AND d.next_at <= p_now
                THEN relance_api_event_json(e.id, e.kind, e.occurred_at, e.data, e.seq)::text END,
           NULL::timestamptz, NULL::int, d.next_at = '-infinity'
      FROM unnest(v_ids) u(id)
      LEFT JOIN webhook_deliveries d ON d.id = u.id
      LEFT JOIN events e ON e.id = d.event_id;
    RETURN QUERY
    SELECT NULL::bigint, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::int,
           NULL::text,
           CASE WHEN cardinality(v_ids) < (SELECT sum(x) FROM unnest(v_wants) x) THEN
               (SELECT min(n.next_at)
                  FROM webhooks w
                  CROSS JOIN LATERAL (SELECT d.next_at FROM webhook_deliveries d
                                       WHERE d.webhook_id = w.id AND d.state = 'pending'
                                       ORDER BY d.next_at LIMIT 1) n
                 WHERE w.enabled) END,
           v_share, NULL::boolean;
END $$;

-- The outcomes of ended transfers (see relance_webhooks_cycle). Only
-- those whose claim this replica still holds, or nobody does: the
-- transaction's own advisory lock on the key is granted when this
-- session holds the session lock, or nobody holds it (a claim lost with
-- an earlier connection that nobody took since); a delivery another
-- replica claimed since is its to record.
--   -1:  never sent (the replica learnt the endpoint was gone, or it
--        was stopping): nothing written, the claim is given back.
--   2xx: delivered: the row leaves the queue for webhook_delivered; the
--        endpoint is healthy again.
--   410: the endpoint asked to be forgotten: disabled now (the delivery
--        stays pending: enabling it again resumes there).
--   else (another status, or none: timeout, refused, TLS...): the next
--        attempt per relance_webhook_retry_after, or failed after the
--        last; an endpoint failing for 5 days on end is disabled.
-- A disabled endpoint gets its webhook.disabled event, which goes to the
-- others.
CREATE OR REPLACE FUNCTION relance_webhooks_record(p_now timestamptz, p_done bigint[], p_status int[],
                                                   p_error text[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_ok bigint[];
BEGIN
    -- Delivered, the common case: out of the queue and into the notes,
    -- each row reached once through the primary key from the outcomes
    -- (the unnest drives a nested loop of index probes). "state NOT IN
    -- ('delivered', 'failed')" is "state = 'pending'" under the table's
    -- CHECK, written so that the planner does not take the partial index
    -- of due deliveries, which it would read whole for the ids.
    WITH delivered AS (
        DELETE FROM webhook_deliveries d
         USING unnest(p_done, p_status) AS u(id, status)
         WHERE d.id = u.id AND u.status BETWEEN 200 AND 299 AND d.state NOT IN ('delivered', 'failed')
           AND pg_try_advisory_xact_lock(relance_webhook_lock_key(d.id))
        RETURNING d.id, d.webhook_id, d.event_id, d.attempts, u.status
    ), noted AS (
        INSERT INTO webhook_delivered (webhook_id, delivered_at, last_id, ids, event_ids, attempts, statuses)
        SELECT x.webhook_id, p_now, max(x.id), array_agg(x.id), array_agg(x.event_id), array_agg(x.attempts + 1),
               array_agg(x.status)
          FROM delivered x GROUP BY x.webhook_id
        RETURNING webhook_id
    )
    SELECT array_agg(n.webhook_id) INTO v_ok FROM noted n;
    -- an endpoint is healthy again (its row changes only then)
    UPDATE webhooks w SET failing_since = NULL, updated_at = p_now
     WHERE w.id = ANY (v_ok) AND w.failing_since IS NOT NULL;

    IF NOT EXISTS (SELECT 1 FROM unnest(p_status) s WHERE s >= 0 AND NOT s BETWEEN 200 AND 299) THEN
        RETURN;
    END IF;
    -- The failures and the 410s.
    WITH o AS MATERIALIZED (
        SELECT d.id, d.webhook_id, u.status, u.error
          FROM unnest(p_done, p_status, p_error) AS u(id, status, error)
          JOIN webhook_deliveries d ON d.id = u.id
         WHERE u.status >= 0 AND NOT u.status BETWEEN 200 AND 299 AND d.state NOT IN ('delivered', 'failed')
           AND pg_try_advisory_xact_lock(relance_webhook_lock_key(d.id))
    ), retried AS (
        UPDATE webhook_deliveries d
           SET state = CASE WHEN o.status = 410 THEN 'pending'
                            WHEN relance_webhook_retry_after(d.attempts + 1) IS NULL THEN 'failed'
                            ELSE 'pending' END,
               attempts = d.attempts + 1,
               next_at = CASE WHEN o.status = 410 THEN d.next_at
                              ELSE p_now + coalesce(relance_webhook_retry_after(d.attempts + 1), '0')
                                           * (0.9 + 0.2 * random()) END,
               last_status = nullif(o.status, 0),
               last_error = left(o.error, 300),
               last_at = p_now
          FROM o
         WHERE d.id = o.id
    ), per AS (
        SELECT o.webhook_id, bool_or(o.status = 410) AS gone FROM o GROUP BY o.webhook_id
    )
    UPDATE webhooks w
       SET failing_since = CASE WHEN w.id = ANY (coalesce(v_ok, '{}')) THEN NULL
                                ELSE coalesce(w.failing_since, p_now) END,
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

    IF NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.disabled_at = p_now AND NOT w.enabled) THEN
        RETURN; -- and the events' statement triggers do not run for nothing
    END IF;
    INSERT INTO events (kind, occurred_at, data)
    SELECT 'webhook.disabled', p_now,
           jsonb_build_object('webhook', jsonb_build_object('id', w.id::text, 'url', w.url, 'name', w.name),
                              'reason', w.disabled_reason)
      FROM webhooks w
     WHERE w.disabled_at = p_now AND NOT w.enabled
       AND w.id IN (SELECT d.webhook_id FROM webhook_deliveries d WHERE d.id = ANY (p_done));
END $$;

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
        DELETE FROM webhooks WHERE id = p_id; -- its deliveries owed go with it (foreign key)
        DELETE FROM webhook_delivered d WHERE d.webhook_id = p_id;
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
-- the latest deliveries first, those owed and those delivered (while
-- their event is kept).
CREATE OR REPLACE FUNCTION relance_webhook_deliveries(p_id bigint, p_limit int)
RETURNS TABLE (id bigint, event_id bigint, type text, state text, attempts int, last_status int,
               last_error text, last_at timestamptz, next_at timestamptz, delivered_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT x.id, x.event_id, e.kind, x.state, x.attempts, x.last_status, x.last_error, x.last_at, x.next_at,
           x.delivered_at
      FROM (SELECT * FROM (
                SELECT d.id, d.event_id, d.state, d.attempts, d.last_status, d.last_error, d.last_at,
                       CASE WHEN d.state = 'pending' THEN d.next_at END AS next_at, d.delivered_at
                  FROM webhook_deliveries d WHERE d.webhook_id = p_id
                 ORDER BY d.id DESC LIMIT p_limit) owed
            UNION ALL
            -- the p_limit rows of greatest last_id hold the p_limit
            -- greatest ids: a row left out has every id under each of
            -- their last_ids
            SELECT u.id, u.event_id, 'delivered', u.attempts, u.status, NULL::text, l.delivered_at,
                   NULL::timestamptz, l.delivered_at
              FROM (SELECT * FROM webhook_delivered l WHERE l.webhook_id = p_id
                     ORDER BY l.last_id DESC LIMIT p_limit) l
             CROSS JOIN LATERAL unnest(l.ids, l.event_ids, l.attempts, l.statuses) u(id, event_id, attempts, status)
             ORDER BY id DESC LIMIT p_limit) x
      JOIN events e ON e.id = x.event_id
     ORDER BY x.id DESC
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
