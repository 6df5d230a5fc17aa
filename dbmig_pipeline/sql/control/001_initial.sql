-- dbmig control schema, version 1.
-- Applied once by dbmig_pipeline/schema.py; later changes are new files.

CREATE TABLE dbmig.migration_control (
    entity             text        NOT NULL,
    partition_key      text        NOT NULL,
    status             text        NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'halted')),
    -- keyset position (cursor_updated_at, cursor_id) of the last committed row;
    -- cursor_updated_at NULL with cursor_id set: inside the NULL-cursor rows of the first partition
    cursor_updated_at  timestamptz,
    cursor_id          bigint,
    rows_read          bigint      NOT NULL DEFAULT 0,
    rows_written       bigint      NOT NULL DEFAULT 0,
    rows_unchanged     bigint      NOT NULL DEFAULT 0,
    rows_parked        bigint      NOT NULL DEFAULT 0,
    rows_quarantined   bigint      NOT NULL DEFAULT 0,
    run_id             text,
    last_error         text,
    started_at         timestamptz,
    finished_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity, partition_key)
);

-- One row per quarantined or parked source row and cause; resolved rows are kept.
CREATE TABLE dbmig.row_errors (
    id             bigserial   PRIMARY KEY,
    entity         text        NOT NULL,
    legacy_id      bigint      NOT NULL,
    category       text        NOT NULL
                   CHECK (category IN ('technical', 'data_quality', 'business_rule', 'missing_parent', 'integrity')),
    detail         text        NOT NULL,
    attempts       integer     NOT NULL DEFAULT 1,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    run_id         text,
    UNIQUE (entity, legacy_id, category)
);
CREATE INDEX row_errors_open_idx ON dbmig.row_errors (entity, category, legacy_id) WHERE resolved_at IS NULL;

-- Data-quality warnings on rows that were migrated anyway (bad e-mail, phone, birth date).
CREATE TABLE dbmig.row_warnings (
    entity       text        NOT NULL,
    legacy_id    bigint      NOT NULL,
    column_name  text        NOT NULL,
    detail       text        NOT NULL,
    seen_at      timestamptz NOT NULL DEFAULT now(),
    run_id       text,
    PRIMARY KEY (entity, legacy_id, column_name)
);

-- The content hash of every source row at its last migration, and what became of it.
CREATE TABLE dbmig.row_ledger (
    entity             text        NOT NULL,
    legacy_id          bigint      NOT NULL,
    row_hash           uuid        NOT NULL,
    source_updated_at  timestamptz,
    outcome            text        NOT NULL CHECK (outcome IN ('loaded', 'quarantined', 'parked', 'deleted')),
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity, legacy_id)
);

-- Append-only record of every operation: run summaries and batch-level detail.
CREATE TABLE dbmig.audit_log (
    id             bigserial   PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT clock_timestamp(),
    operation      text        NOT NULL,
    level          text        NOT NULL DEFAULT 'summary' CHECK (level IN ('summary', 'detail')),
    entity         text,
    partition_key  text,
    run_id         text,
    batch_no       integer,
    operator       text,
    details        jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at_idx ON dbmig.audit_log (at);
CREATE INDEX audit_log_run_idx ON dbmig.audit_log (run_id);
-- A batch is committed at most once per run: a re-run after a crash cannot log it twice.
CREATE UNIQUE INDEX audit_log_batch_once_idx ON dbmig.audit_log (run_id, entity, batch_no)
    WHERE operation = 'batch_committed';

CREATE FUNCTION dbmig.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('dbmig.pruning', true) = 'on' AND OLD.level = 'detail' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'dbmig.audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON dbmig.audit_log
    FOR EACH ROW EXECUTE FUNCTION dbmig.audit_log_append_only();

-- Accepted fingerprints of the tables each entity reads, per side.
CREATE TABLE dbmig.schema_snapshots (
    entity       text        NOT NULL,
    side         text        NOT NULL CHECK (side IN ('source', 'target')),
    fingerprint  jsonb       NOT NULL,
    digest       text        NOT NULL,
    accepted_at  timestamptz NOT NULL DEFAULT now(),
    accepted_by  text        NOT NULL,
    PRIMARY KEY (entity, side)
);
