-- The schema of a freshly migrated database: tables, sequences, indexes,
-- constraints and triggers (the functions are sql/functions/'s). Generated
-- from pg_dump --schema-only, never edited: after a migration, run
--   RELANCE_BIN=build/relance python3 tests/schema_dump.py

CREATE TABLE public.contacts (
    id bigint NOT NULL,
    email text NOT NULL,
    email_key text GENERATED ALWAYS AS (lower(email)) STORED,
    first_name text,
    last_name text,
    title text,
    company text,
    company_domain text,
    timezone text,
    crm_id text,
    fields jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    erased_at timestamp with time zone,
    event_seq bigint DEFAULT 0 NOT NULL,
    CONSTRAINT contacts_fields_check CHECK ((jsonb_typeof(fields) = 'object'::text))
);

CREATE TABLE public.enrollments (
    id bigint NOT NULL,
    contact_id bigint NOT NULL,
    sequence_id bigint NOT NULL,
    version integer NOT NULL,
    state text DEFAULT 'active'::text NOT NULL,
    state_reason text DEFAULT 'enrolled'::text NOT NULL,
    state_changed_at timestamp with time zone NOT NULL,
    "position" integer DEFAULT 0 NOT NULL,
    next_send_at timestamp with time zone,
    jitter_r double precision DEFAULT 0 NOT NULL,
    account_id bigint,
    created_at timestamp with time zone NOT NULL,
    not_before timestamp with time zone,
    CONSTRAINT enrollments_jitter_r_check CHECK (((jitter_r >= (0)::double precision) AND (jitter_r < (1)::double precision))),
    CONSTRAINT enrollments_state_check CHECK ((state = ANY (ARRAY['active'::text, 'paused'::text, 'held'::text, 'replied'::text, 'bounced'::text, 'unsubscribed'::text, 'completed'::text, 'failed'::text, 'stopped'::text])))
);

CREATE TABLE public.webhooks (
    id bigint NOT NULL,
    source text DEFAULT 'api'::text NOT NULL,
    name text,
    url text NOT NULL,
    types text[] DEFAULT '{}'::text[] NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    secret text,
    previous_secret text,
    previous_until timestamp with time zone,
    failing_since timestamp with time zone,
    disabled_at timestamp with time zone,
    disabled_reason text,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT webhooks_check CHECK (((source = 'config'::text) OR (secret IS NOT NULL))),
    CONSTRAINT webhooks_check1 CHECK (((source = 'config'::text) = (name IS NOT NULL))),
    CONSTRAINT webhooks_source_check CHECK ((source = ANY (ARRAY['api'::text, 'config'::text])))
);

CREATE TABLE public.account_days (
    account_id bigint NOT NULL,
    day date NOT NULL,
    sent integer DEFAULT 0 NOT NULL,
    CONSTRAINT account_days_sent_check CHECK ((sent >= 0))
);

CREATE TABLE public.account_refusals (
    account_id bigint NOT NULL,
    status text NOT NULL,
    at timestamp with time zone NOT NULL
);

CREATE TABLE public.accounts (
    id bigint NOT NULL,
    email text NOT NULL,
    pool text NOT NULL,
    from_name text,
    daily_limit integer DEFAULT 0 NOT NULL,
    min_interval_s integer DEFAULT 0 NOT NULL,
    interval_jitter_s integer DEFAULT 0 NOT NULL,
    timezone text DEFAULT 'UTC'::text NOT NULL,
    warmup_start integer DEFAULT 0 NOT NULL,
    warmup_increase integer DEFAULT 0 NOT NULL,
    configured boolean DEFAULT true NOT NULL,
    state text DEFAULT 'active'::text NOT NULL,
    state_reason text,
    state_changed_at timestamp with time zone,
    next_send_after timestamp with time zone,
    last_claim_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    max_bounce_rate double precision DEFAULT 0.05 NOT NULL,
    max_policy_blocks integer DEFAULT 3 NOT NULL,
    CONSTRAINT accounts_daily_limit_check CHECK ((daily_limit >= 0)),
    CONSTRAINT accounts_interval_jitter_s_check CHECK ((interval_jitter_s >= 0)),
    CONSTRAINT accounts_max_bounce_rate_check CHECK (((max_bounce_rate >= (0)::double precision) AND (max_bounce_rate <= (1)::double precision))),
    CONSTRAINT accounts_max_policy_blocks_check CHECK ((max_policy_blocks >= 1)),
    CONSTRAINT accounts_min_interval_s_check CHECK ((min_interval_s >= 0)),
    CONSTRAINT accounts_state_check CHECK ((state = ANY (ARRAY['active'::text, 'paused'::text]))),
    CONSTRAINT accounts_warmup_increase_check CHECK ((warmup_increase >= 0)),
    CONSTRAINT accounts_warmup_start_check CHECK ((warmup_start >= 0))
);

CREATE SEQUENCE public.accounts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.accounts_id_seq OWNED BY public.accounts.id;

CREATE TABLE public.api_idempotency (
    key_id text NOT NULL,
    idem_key text NOT NULL,
    request_hash bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    status integer,
    content_type text,
    body text
);

CREATE TABLE public.api_keys (
    id text NOT NULL,
    name text NOT NULL,
    scopes text[] NOT NULL,
    secret_hash bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_used_at timestamp with time zone,
    revoked_at timestamp with time zone,
    CONSTRAINT api_keys_id_check CHECK ((id ~ '^[A-Za-z0-9]{12}$'::text)),
    CONSTRAINT api_keys_name_check CHECK ((name <> ''::text)),
    CONSTRAINT api_keys_scopes_check CHECK ((cardinality(scopes) > 0)),
    CONSTRAINT api_keys_secret_hash_check CHECK ((length(secret_hash) = 32))
);

CREATE SEQUENCE public.contacts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.contacts_id_seq OWNED BY public.contacts.id;

CREATE SEQUENCE public.enrollments_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.enrollments_id_seq OWNED BY public.enrollments.id;

CREATE TABLE public.event_types (
    type text NOT NULL,
    CONSTRAINT event_types_type_check CHECK ((type ~ '^[a-z_]+\.[a-z_]+$'::text))
);

CREATE TABLE public.events (
    id bigint NOT NULL,
    kind text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    data jsonb DEFAULT '{}'::jsonb NOT NULL,
    xid xid8 DEFAULT pg_current_xact_id() NOT NULL,
    contact_id bigint,
    seq bigint,
    CONSTRAINT events_kind_check CHECK ((kind ~ '^[a-z_.]+$'::text)),
    CONSTRAINT events_seq_with_contact CHECK (((contact_id IS NULL) = (seq IS NULL)))
);

CREATE SEQUENCE public.events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.events_id_seq OWNED BY public.events.id;

CREATE TABLE public.inbound_messages (
    id bigint NOT NULL,
    account_id bigint NOT NULL,
    folder text NOT NULL,
    uidvalidity bigint NOT NULL,
    uid bigint NOT NULL,
    message_id text,
    sender text NOT NULL,
    kind text NOT NULL,
    reason text DEFAULT 'none'::text NOT NULL,
    is_block boolean DEFAULT false NOT NULL,
    return_date date,
    effect text DEFAULT 'pending'::text NOT NULL,
    effect_reason text,
    matched_by text,
    enrollment_id bigint,
    matched_message bigint,
    detected_at timestamp with time zone NOT NULL,
    pruned_at timestamp with time zone,
    CONSTRAINT inbound_messages_effect_check CHECK ((effect = ANY (ARRAY['pending'::text, 'replied'::text, 'unsubscribed'::text, 'bounced'::text, 'soft_bounce'::text, 'blocked'::text, 'auto_reply'::text, 'ignored'::text, 'unmatched'::text]))),
    CONSTRAINT inbound_messages_kind_check CHECK ((kind = ANY (ARRAY['human_reply'::text, 'auto_reply'::text, 'hard_bounce'::text, 'soft_bounce'::text, 'unsubscribe_request'::text, 'other'::text]))),
    CONSTRAINT inbound_messages_matched_by_check CHECK ((matched_by = ANY (ARRAY['message-id'::text, 'sender'::text, 'recipient'::text])))
);

CREATE SEQUENCE public.inbound_messages_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.inbound_messages_id_seq OWNED BY public.inbound_messages.id;

CREATE TABLE public.lease_history (
    id bigint NOT NULL,
    name text NOT NULL,
    holder text NOT NULL,
    since timestamp with time zone NOT NULL,
    until timestamp with time zone NOT NULL,
    released boolean DEFAULT false NOT NULL
);

CREATE SEQUENCE public.lease_history_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.lease_history_id_seq OWNED BY public.lease_history.id;

CREATE TABLE public.leases (
    name text NOT NULL,
    holder text NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

CREATE TABLE public.mailbox_state (
    account_id bigint NOT NULL,
    folder text NOT NULL,
    uidvalidity bigint NOT NULL,
    last_uid bigint DEFAULT 0 NOT NULL,
    uidnext bigint,
    watching_since date NOT NULL,
    checked_at timestamp with time zone,
    CONSTRAINT mailbox_state_last_uid_check CHECK ((last_uid >= 0))
);

CREATE TABLE public.messages (
    id bigint NOT NULL,
    enrollment_id bigint NOT NULL,
    "position" integer NOT NULL,
    step_id text NOT NULL,
    variant integer,
    state text NOT NULL,
    message_id text NOT NULL,
    account_id bigint,
    sender text,
    recipient text NOT NULL,
    subject text,
    attempts integer DEFAULT 0 NOT NULL,
    reply text,
    claimed_by text,
    body_started boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone NOT NULL,
    sent_at timestamp with time zone,
    outcome text,
    soft_bounces integer DEFAULT 0 NOT NULL,
    pruned_at timestamp with time zone,
    claimed_at timestamp with time zone,
    CONSTRAINT messages_state_check CHECK ((state = ANY (ARRAY['sending'::text, 'sent'::text, 'deferred'::text, 'bounced'::text, 'unknown'::text, 'failed'::text])))
);

CREATE SEQUENCE public.messages_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.messages_id_seq OWNED BY public.messages.id;

CREATE TABLE public.pools (
    name text NOT NULL,
    domain_hourly_limit integer DEFAULT 0 NOT NULL,
    CONSTRAINT pools_domain_hourly_limit_check CHECK ((domain_hourly_limit >= 0))
);

CREATE TABLE public.relance_functions (
    name text NOT NULL,
    checksum text NOT NULL,
    release text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.relance_migrations (
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.sequence_steps (
    sequence_id bigint NOT NULL,
    version integer NOT NULL,
    "position" integer NOT NULL,
    step_id text NOT NULL,
    wait_seconds bigint DEFAULT 0 NOT NULL,
    wait_days integer DEFAULT 0 NOT NULL,
    wait_business_days integer DEFAULT 0 NOT NULL,
    thread boolean DEFAULT true NOT NULL,
    CONSTRAINT sequence_steps_position_check CHECK (("position" >= 0)),
    CONSTRAINT sequence_steps_wait_business_days_check CHECK ((wait_business_days >= 0)),
    CONSTRAINT sequence_steps_wait_days_check CHECK ((wait_days >= 0)),
    CONSTRAINT sequence_steps_wait_seconds_check CHECK ((wait_seconds >= 0))
);

CREATE TABLE public.sequence_versions (
    sequence_id bigint NOT NULL,
    version integer NOT NULL,
    content_hash text NOT NULL,
    source_file text NOT NULL,
    source text NOT NULL,
    model jsonb NOT NULL,
    sender_pool text NOT NULL,
    timezone text,
    fallback_timezone text,
    window_start_min integer NOT NULL,
    window_end_min integer NOT NULL,
    days integer NOT NULL,
    jitter_seconds integer DEFAULT 600 NOT NULL,
    stop_on text[] NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT sequence_versions_check CHECK ((window_start_min < window_end_min)),
    CONSTRAINT sequence_versions_check1 CHECK (((timezone IS NOT NULL) OR (fallback_timezone IS NOT NULL))),
    CONSTRAINT sequence_versions_days_check CHECK (((days >= 1) AND (days <= 127))),
    CONSTRAINT sequence_versions_jitter_seconds_check CHECK ((jitter_seconds >= 0)),
    CONSTRAINT sequence_versions_version_check CHECK ((version >= 1)),
    CONSTRAINT sequence_versions_window_end_min_check CHECK (((window_end_min >= 1) AND (window_end_min <= 1440))),
    CONSTRAINT sequence_versions_window_start_min_check CHECK (((window_start_min >= 0) AND (window_start_min <= 1439)))
);

CREATE TABLE public.sequences (
    id bigint NOT NULL,
    name text NOT NULL,
    current_version integer DEFAULT 1 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT sequences_name_check CHECK ((name ~ '^[a-z0-9]+(-[a-z0-9]+)*$'::text))
);

CREATE SEQUENCE public.sequences_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.sequences_id_seq OWNED BY public.sequences.id;

CREATE TABLE public.stats_hits (
    message_id text NOT NULL,
    sequence text NOT NULL,
    replied boolean DEFAULT false NOT NULL,
    auto_replied boolean DEFAULT false NOT NULL,
    bounced boolean DEFAULT false NOT NULL,
    unsubscribed boolean DEFAULT false NOT NULL
);

CREATE TABLE public.suppressions (
    pattern text NOT NULL,
    reason text DEFAULT 'manual'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT suppressions_pattern_check CHECK (((pattern = lower(pattern)) AND (pattern ~~ '%@%'::text)))
);

CREATE TABLE public.tracking_hits (
    id bigint NOT NULL,
    message_id bigint NOT NULL,
    kind text NOT NULL,
    url text,
    at timestamp with time zone NOT NULL,
    user_agent text,
    bot_suspected boolean NOT NULL,
    bot_reason text,
    proxy boolean DEFAULT false NOT NULL,
    CONSTRAINT tracking_hits_kind_check CHECK ((kind = ANY (ARRAY['open'::text, 'click'::text])))
);

CREATE SEQUENCE public.tracking_hits_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.tracking_hits_id_seq OWNED BY public.tracking_hits.id;

CREATE TABLE public.webhook_delivered (
    webhook_id bigint NOT NULL,
    delivered_at timestamp with time zone NOT NULL,
    last_id bigint NOT NULL,
    ids bigint[] NOT NULL,
    event_ids bigint[] NOT NULL,
    attempts integer[] NOT NULL,
    statuses integer[] NOT NULL
);

CREATE TABLE public.webhook_deliveries (
    id bigint NOT NULL,
    webhook_id bigint NOT NULL,
    event_id bigint NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_at timestamp with time zone DEFAULT '-infinity'::timestamp with time zone NOT NULL,
    last_status integer,
    last_error text,
    last_at timestamp with time zone,
    delivered_at timestamp with time zone,
    CONSTRAINT webhook_deliveries_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'delivered'::text, 'failed'::text])))
)
WITH (fillfactor='70');

CREATE SEQUENCE public.webhook_deliveries_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.webhook_deliveries_id_seq OWNED BY public.webhook_deliveries.id;

CREATE SEQUENCE public.webhooks_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.webhooks_id_seq OWNED BY public.webhooks.id;

ALTER TABLE ONLY public.accounts ALTER COLUMN id SET DEFAULT nextval('public.accounts_id_seq'::regclass);

ALTER TABLE ONLY public.contacts ALTER COLUMN id SET DEFAULT nextval('public.contacts_id_seq'::regclass);

ALTER TABLE ONLY public.enrollments ALTER COLUMN id SET DEFAULT nextval('public.enrollments_id_seq'::regclass);

ALTER TABLE ONLY public.events ALTER COLUMN id SET DEFAULT nextval('public.events_id_seq'::regclass);

ALTER TABLE ONLY public.inbound_messages ALTER COLUMN id SET DEFAULT nextval('public.inbound_messages_id_seq'::regclass);

ALTER TABLE ONLY public.lease_history ALTER COLUMN id SET DEFAULT nextval('public.lease_history_id_seq'::regclass);

ALTER TABLE ONLY public.messages ALTER COLUMN id SET DEFAULT nextval('public.messages_id_seq'::regclass);

ALTER TABLE ONLY public.sequences ALTER COLUMN id SET DEFAULT nextval('public.sequences_id_seq'::regclass);

ALTER TABLE ONLY public.tracking_hits ALTER COLUMN id SET DEFAULT nextval('public.tracking_hits_id_seq'::regclass);

ALTER TABLE ONLY public.webhook_deliveries ALTER COLUMN id SET DEFAULT nextval('public.webhook_deliveries_id_seq'::regclass);

ALTER TABLE ONLY public.webhooks ALTER COLUMN id SET DEFAULT nextval('public.webhooks_id_seq'::regclass);

ALTER TABLE ONLY public.account_days
    ADD CONSTRAINT account_days_pkey PRIMARY KEY (account_id, day);

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_email_key UNIQUE (email);

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.api_idempotency
    ADD CONSTRAINT api_idempotency_pkey PRIMARY KEY (key_id, idem_key);

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.contacts
    ADD CONSTRAINT contacts_crm_id_key UNIQUE (crm_id);

ALTER TABLE ONLY public.contacts
    ADD CONSTRAINT contacts_email_key_key UNIQUE (email_key);

ALTER TABLE ONLY public.contacts
    ADD CONSTRAINT contacts_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.enrollments
    ADD CONSTRAINT enrollments_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.event_types
    ADD CONSTRAINT event_types_pkey PRIMARY KEY (type);

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.inbound_messages
    ADD CONSTRAINT inbound_messages_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.lease_history
    ADD CONSTRAINT lease_history_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.leases
    ADD CONSTRAINT leases_pkey PRIMARY KEY (name);

ALTER TABLE ONLY public.mailbox_state
    ADD CONSTRAINT mailbox_state_pkey PRIMARY KEY (account_id, folder);

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_enrollment_id_position_key UNIQUE (enrollment_id, "position");

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_message_id_key UNIQUE (message_id);

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.pools
    ADD CONSTRAINT pools_pkey PRIMARY KEY (name);

ALTER TABLE ONLY public.relance_functions
    ADD CONSTRAINT relance_functions_pkey PRIMARY KEY (name);

ALTER TABLE ONLY public.relance_migrations
    ADD CONSTRAINT relance_migrations_pkey PRIMARY KEY (name);

ALTER TABLE ONLY public.sequence_steps
    ADD CONSTRAINT sequence_steps_pkey PRIMARY KEY (sequence_id, version, "position");

ALTER TABLE ONLY public.sequence_steps
    ADD CONSTRAINT sequence_steps_sequence_id_version_step_id_key UNIQUE (sequence_id, version, step_id);

ALTER TABLE ONLY public.sequence_versions
    ADD CONSTRAINT sequence_versions_pkey PRIMARY KEY (sequence_id, version);

ALTER TABLE ONLY public.sequences
    ADD CONSTRAINT sequences_name_key UNIQUE (name);

ALTER TABLE ONLY public.sequences
    ADD CONSTRAINT sequences_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.stats_hits
    ADD CONSTRAINT stats_hits_pkey PRIMARY KEY (message_id);

ALTER TABLE ONLY public.suppressions
    ADD CONSTRAINT suppressions_pkey PRIMARY KEY (pattern);

ALTER TABLE ONLY public.tracking_hits
    ADD CONSTRAINT tracking_hits_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_webhook_id_event_id_key UNIQUE (webhook_id, event_id);

ALTER TABLE ONLY public.webhooks
    ADD CONSTRAINT webhooks_name_key UNIQUE (name);

ALTER TABLE ONLY public.webhooks
    ADD CONSTRAINT webhooks_pkey PRIMARY KEY (id);

CREATE INDEX account_refusals_account ON public.account_refusals USING btree (account_id, status, at);

CREATE INDEX api_idempotency_created_at ON public.api_idempotency USING btree (created_at);

CREATE UNIQUE INDEX api_keys_live_name ON public.api_keys USING btree (name) WHERE (revoked_at IS NULL);

CREATE INDEX contacts_company_domain ON public.contacts USING btree (company_domain) WHERE (company_domain IS NOT NULL);

CREATE INDEX enrollments_account_due ON public.enrollments USING btree (account_id, next_send_at) WHERE ((state = 'active'::text) AND (account_id IS NOT NULL));

CREATE INDEX enrollments_contact ON public.enrollments USING btree (contact_id);

CREATE INDEX enrollments_due ON public.enrollments USING btree (next_send_at) WHERE (state = 'active'::text);

CREATE UNIQUE INDEX enrollments_live ON public.enrollments USING btree (contact_id, sequence_id) WHERE (state = ANY (ARRAY['active'::text, 'paused'::text, 'held'::text]));

CREATE INDEX enrollments_new_due ON public.enrollments USING btree (next_send_at) WHERE ((state = 'active'::text) AND (account_id IS NULL));

CREATE UNIQUE INDEX events_contact_seq ON public.events USING btree (contact_id, seq) WHERE (contact_id IS NOT NULL);

CREATE INDEX events_kind_occurred_at ON public.events USING btree (kind, occurred_at);

CREATE INDEX events_occurred_at ON public.events USING btree (occurred_at);

CREATE INDEX events_xid_id ON public.events USING btree (xid, id);

CREATE INDEX inbound_messages_blocks ON public.inbound_messages USING btree (account_id, detected_at) WHERE (effect = 'blocked'::text);

CREATE UNIQUE INDEX inbound_messages_message_id ON public.inbound_messages USING btree (account_id, message_id) WHERE (message_id IS NOT NULL);

CREATE UNIQUE INDEX inbound_messages_place ON public.inbound_messages USING btree (account_id, folder, uidvalidity, uid);

CREATE INDEX inbound_messages_unpruned ON public.inbound_messages USING btree (detected_at) WHERE (pruned_at IS NULL);

CREATE INDEX lease_history_name ON public.lease_history USING btree (name, id);

CREATE INDEX messages_account_created ON public.messages USING btree (account_id, created_at) WHERE (account_id IS NOT NULL);

CREATE INDEX messages_in_flight ON public.messages USING btree (account_id) WHERE (state = 'sending'::text);

CREATE INDEX messages_state ON public.messages USING btree (state) WHERE (state = ANY (ARRAY['sending'::text, 'deferred'::text, 'unknown'::text]));

CREATE INDEX messages_unpruned ON public.messages USING btree (created_at) WHERE (pruned_at IS NULL);

CREATE INDEX tracking_hits_message ON public.tracking_hits USING btree (message_id, kind, at);

CREATE INDEX webhook_delivered_at ON public.webhook_delivered USING btree (delivered_at);

CREATE INDEX webhook_delivered_webhook ON public.webhook_delivered USING btree (webhook_id, last_id);

CREATE INDEX webhook_deliveries_due ON public.webhook_deliveries USING btree (webhook_id, next_at, id) WHERE (state = 'pending'::text);

CREATE INDEX webhook_deliveries_event ON public.webhook_deliveries USING btree (event_id);

CREATE TRIGGER contacts_changed AFTER UPDATE ON public.contacts FOR EACH ROW WHEN (((((((((((((old.email IS DISTINCT FROM new.email) OR (old.first_name IS DISTINCT FROM new.first_name)) OR (old.last_name IS DISTINCT FROM new.last_name)) OR (old.title IS DISTINCT FROM new.title)) OR (old.company IS DISTINCT FROM new.company)) OR (old.company_domain IS DISTINCT FROM new.company_domain)) OR (old.timezone IS DISTINCT FROM new.timezone)) OR (old.crm_id IS DISTINCT FROM new.crm_id)) OR (old.fields IS DISTINCT FROM new.fields)) OR (old.created_at IS DISTINCT FROM new.created_at)) OR (old.updated_at IS DISTINCT FROM new.updated_at)) OR (old.erased_at IS DISTINCT FROM new.erased_at))) EXECUTE FUNCTION public.relance_contact_changed();

CREATE TRIGGER enrollments_not_before BEFORE UPDATE ON public.enrollments FOR EACH ROW WHEN (((new.not_before IS NOT NULL) AND (new.next_send_at < new.not_before))) EXECUTE FUNCTION public.relance_hold_not_before();

CREATE TRIGGER enrollments_version_changed BEFORE UPDATE ON public.enrollments FOR EACH ROW WHEN (((new.sequence_id IS DISTINCT FROM old.sequence_id) OR (new.version IS DISTINCT FROM old.version))) EXECUTE FUNCTION public.relance_enrollments_versions_exist();

CREATE TRIGGER enrollments_versions_inserted AFTER INSERT ON public.enrollments REFERENCING NEW TABLE AS relance_new_enrollments FOR EACH STATEMENT EXECUTE FUNCTION public.relance_enrollments_versions_exist();

CREATE TRIGGER enrollments_work AFTER INSERT OR UPDATE OF state, next_send_at ON public.enrollments FOR EACH STATEMENT EXECUTE FUNCTION public.relance_notify_work();

CREATE TRIGGER events_kind_catalogued AFTER INSERT ON public.events REFERENCING NEW TABLE AS relance_new_events FOR EACH STATEMENT EXECUTE FUNCTION public.relance_events_catalogued();

CREATE TRIGGER events_kind_catalogued_update AFTER UPDATE ON public.events REFERENCING NEW TABLE AS relance_new_events FOR EACH STATEMENT EXECUTE FUNCTION public.relance_events_catalogued();

CREATE TRIGGER events_seq BEFORE INSERT ON public.events FOR EACH ROW WHEN (((new.contact_id IS NOT NULL) AND (new.seq IS NULL))) EXECUTE FUNCTION public.relance_event_seq();

CREATE TRIGGER events_webhooks AFTER INSERT ON public.events REFERENCING NEW TABLE AS relance_new_events FOR EACH STATEMENT EXECUTE FUNCTION public.relance_webhooks_fan_out();

CREATE TRIGGER lease_history_given_up AFTER DELETE ON public.leases FOR EACH ROW WHEN ((old.name !~~ 'replica:%'::text)) EXECUTE FUNCTION public.relance_lease_history();

CREATE TRIGGER lease_history_taken AFTER INSERT OR UPDATE ON public.leases FOR EACH ROW WHEN ((new.name !~~ 'replica:%'::text)) EXECUTE FUNCTION public.relance_lease_history();

CREATE TRIGGER sequence_versions_append_only BEFORE DELETE OR UPDATE ON public.sequence_versions FOR EACH ROW EXECUTE FUNCTION public.relance_sequence_versions_append_only();

ALTER TABLE ONLY public.account_days
    ADD CONSTRAINT account_days_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id);

ALTER TABLE ONLY public.account_refusals
    ADD CONSTRAINT account_refusals_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id);

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_pool_fkey FOREIGN KEY (pool) REFERENCES public.pools(name);

ALTER TABLE ONLY public.api_idempotency
    ADD CONSTRAINT api_idempotency_key_id_fkey FOREIGN KEY (key_id) REFERENCES public.api_keys(id);

ALTER TABLE ONLY public.enrollments
    ADD CONSTRAINT enrollments_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id);

ALTER TABLE ONLY public.enrollments
    ADD CONSTRAINT enrollments_contact_id_fkey FOREIGN KEY (contact_id) REFERENCES public.contacts(id);

ALTER TABLE ONLY public.inbound_messages
    ADD CONSTRAINT inbound_messages_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id);

ALTER TABLE ONLY public.inbound_messages
    ADD CONSTRAINT inbound_messages_enrollment_id_fkey FOREIGN KEY (enrollment_id) REFERENCES public.enrollments(id);

ALTER TABLE ONLY public.inbound_messages
    ADD CONSTRAINT inbound_messages_matched_message_fkey FOREIGN KEY (matched_message) REFERENCES public.messages(id);

ALTER TABLE ONLY public.mailbox_state
    ADD CONSTRAINT mailbox_state_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id);

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id);

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_enrollment_id_fkey FOREIGN KEY (enrollment_id) REFERENCES public.enrollments(id);

ALTER TABLE ONLY public.sequence_steps
    ADD CONSTRAINT sequence_steps_sequence_id_version_fkey FOREIGN KEY (sequence_id, version) REFERENCES public.sequence_versions(sequence_id, version);

ALTER TABLE ONLY public.sequence_versions
    ADD CONSTRAINT sequence_versions_sequence_id_fkey FOREIGN KEY (sequence_id) REFERENCES public.sequences(id);

ALTER TABLE ONLY public.tracking_hits
    ADD CONSTRAINT tracking_hits_message_id_fkey FOREIGN KEY (message_id) REFERENCES public.messages(id);

ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_event_id_fkey FOREIGN KEY (event_id) REFERENCES public.events(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_webhook_id_fkey FOREIGN KEY (webhook_id) REFERENCES public.webhooks(id) ON DELETE CASCADE;
