-- The status page's audit view pages newest first by id (a keyset cursor), filtered by object,
-- uid or outcome: each filter gets an index ending in the id, so a deep page reads 50 index
-- entries instead of scanning the table.
CREATE INDEX audit_intents_object_name_id ON audit_intents (object_name, id);
CREATE INDEX audit_intents_object_uid_id ON audit_intents (object_uid, id);
CREATE INDEX audit_outcomes_outcome_intent_id ON audit_outcomes (outcome, intent_id);
