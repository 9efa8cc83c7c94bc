-- The audit trail: one intent row written before every mutating Proxmox call, and one outcome
-- row written after it. Both are append-only; an intent without an outcome is a call whose end
-- is unknown (still running, or the operator stopped first). Times are UTC text of one fixed
-- width (2025-01-02T03:04:05.123456Z), so text order is time order.

CREATE TABLE audit_intents (
    -- AUTOINCREMENT: ids are never reused after a prune, so a late outcome cannot land on
    -- another call's intent.
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at               TEXT NOT NULL,
    actor            TEXT NOT NULL,
    object_kind      TEXT NOT NULL,
    object_namespace TEXT,
    object_name      TEXT NOT NULL,
    object_uid       TEXT NOT NULL,
    generation       INTEGER NOT NULL,
    phase            TEXT NOT NULL,
    operation        TEXT NOT NULL,
    node             TEXT,
    vmid             INTEGER,
    -- Redacted before it is written: secrets never reach this table.
    params           TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(params))
);

CREATE INDEX audit_intents_object_uid_at ON audit_intents (object_uid, at);
CREATE INDEX audit_intents_at ON audit_intents (at);

CREATE TABLE audit_outcomes (
    intent_id   INTEGER PRIMARY KEY REFERENCES audit_intents (id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
    upid        TEXT,
    error       TEXT,
    error_class TEXT,
    duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0)
);

CREATE INDEX audit_outcomes_outcome_at ON audit_outcomes (outcome, at);
