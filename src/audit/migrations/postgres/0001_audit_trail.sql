-- The audit trail: one intent row written before every mutating Proxmox call, and one outcome
-- row written after it. Both are append-only; an intent without an outcome is a call whose end
-- is unknown (still running, or the operator stopped first).

CREATE TABLE audit_intents (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at               TIMESTAMPTZ NOT NULL,
    actor            TEXT NOT NULL,
    object_kind      TEXT NOT NULL,
    object_namespace TEXT,
    object_name      TEXT NOT NULL,
    object_uid       TEXT NOT NULL,
    generation       BIGINT NOT NULL,
    phase            TEXT NOT NULL,
    operation        TEXT NOT NULL,
    node             TEXT,
    vmid             BIGINT,
    -- Redacted before it is written: secrets never reach this table.
    params           JSONB NOT NULL DEFAULT '{}'::jsonb
);

-- by object (newest first), by time and for retention.
CREATE INDEX audit_intents_object_uid_at ON audit_intents (object_uid, at);
CREATE INDEX audit_intents_at ON audit_intents (at);

CREATE TABLE audit_outcomes (
    intent_id   BIGINT PRIMARY KEY REFERENCES audit_intents (id) ON DELETE CASCADE,
    at          TIMESTAMPTZ NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
    upid        TEXT,
    error       TEXT,
    error_class TEXT,
    duration_ms BIGINT NOT NULL CHECK (duration_ms >= 0)
);

-- by outcome since a time (failed calls of the last hour).
CREATE INDEX audit_outcomes_outcome_at ON audit_outcomes (outcome, at);
