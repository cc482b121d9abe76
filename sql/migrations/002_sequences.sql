-- 002: sequences and their versions, as `relance apply` writes them.
--
-- A sequence file applied for the first time creates a sequence and its
-- version 1; a changed file adds version N+1 and moves current_version;
-- enrollments keep the version they started with, so every version stays
-- readable for good. The YAML source is stored verbatim (preview and show
-- re-read it with the same loader as lint), and what the scheduler needs
-- is stored as columns so SQL can compute send times without parsing.

CREATE TABLE sequences (
    id              bigserial   PRIMARY KEY,
    name            text        NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    current_version int         NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sequence_versions (
    sequence_id       bigint      NOT NULL REFERENCES sequences (id),
    version           int         NOT NULL CHECK (version >= 1),
    content_hash      text        NOT NULL,        -- SHA-256 of the canonical model
    source_file       text        NOT NULL,
    source            text        NOT NULL,        -- the YAML as applied
    model             jsonb       NOT NULL,        -- the validated model, canonical
    sender_pool       text        NOT NULL,
    -- schedule: timezone NULL means the contact's, falling back to fallback_timezone
    timezone          text,
    fallback_timezone text,
    window_start_min  int         NOT NULL CHECK (window_start_min BETWEEN 0 AND 1439),
    window_end_min    int         NOT NULL CHECK (window_end_min BETWEEN 1 AND 1440),
    days              int         NOT NULL CHECK (days BETWEEN 1 AND 127), -- mon=1 ... sun=64
    jitter_seconds    int         NOT NULL DEFAULT 600 CHECK (jitter_seconds >= 0),
    stop_on           text[]      NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sequence_id, version),
    CHECK (window_start_min < window_end_min),
    CHECK (timezone IS NOT NULL OR fallback_timezone IS NOT NULL)
);

CREATE TABLE sequence_steps (
    sequence_id        bigint  NOT NULL,
    version            int     NOT NULL,
    position           int     NOT NULL CHECK (position >= 0),  -- 0 is the first step
    step_id            text    NOT NULL,
    wait_seconds       bigint  NOT NULL DEFAULT 0 CHECK (wait_seconds >= 0),
    wait_days          int     NOT NULL DEFAULT 0 CHECK (wait_days >= 0),
    wait_business_days int     NOT NULL DEFAULT 0 CHECK (wait_business_days >= 0),
    thread             boolean NOT NULL DEFAULT true,
    PRIMARY KEY (sequence_id, version, position),
    UNIQUE (sequence_id, version, step_id),
    FOREIGN KEY (sequence_id, version) REFERENCES sequence_versions (sequence_id, version)
);
