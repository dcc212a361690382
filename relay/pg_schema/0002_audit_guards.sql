-- The audit trail is append-only for anyone's SQL, not only for the gateway's (relay/audit.py
-- and relay/audit_guard.py; the attacker review of 2026-12-03, finding 1). Version 1 refused
-- UPDATE and DELETE of audit_records only: an INSERT below the head (after a DELETE that a
-- dropped trigger let through, or through TRUNCATE), a rewritten or deleted checkpoint and a
-- replaced bundle or trust set were still possible.

-- TRUNCATE fires no row trigger: refused by statement triggers on every audit table.
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only (% on %)', TG_OP, TG_TABLE_NAME;
END;
$$;

-- An insert must extend the chain (records) or the list of checkpoints: never at or below
-- the current head.
CREATE FUNCTION audit_append_at_head() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head BIGINT;
BEGIN
    EXECUTE format('SELECT COALESCE(MAX(seq), 0) FROM %I', TG_TABLE_NAME) INTO head;
    IF NEW.seq <= head THEN
        RAISE EXCEPTION 'the audit trail is append-only: seq % is not above the head %',
            NEW.seq, head;
    END IF;
    RETURN NEW;
END;
$$;

-- A digest names its content: a second insert of one is skipped (the gateway's ON CONFLICT DO
-- NOTHING), and the first is never replaced (UPDATE is refused below).
CREATE FUNCTION audit_keep_first() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    found BOOLEAN;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE digest = $1)', TG_TABLE_NAME)
        INTO found USING NEW.digest;
    IF found THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_records_append_at_head BEFORE INSERT ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_append_at_head();
CREATE TRIGGER audit_checkpoints_append_at_head BEFORE INSERT ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_at_head();
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_evidence_keep_first BEFORE INSERT ON audit_evidence
    FOR EACH ROW EXECUTE FUNCTION audit_keep_first();
CREATE TRIGGER audit_evidence_no_change BEFORE UPDATE OR DELETE ON audit_evidence
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_trust_keep_first BEFORE INSERT ON audit_trust
    FOR EACH ROW EXECUTE FUNCTION audit_keep_first();
CREATE TRIGGER audit_trust_no_change BEFORE UPDATE OR DELETE ON audit_trust
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();

CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_evidence_no_truncate BEFORE TRUNCATE ON audit_evidence
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_trust_no_truncate BEFORE TRUNCATE ON audit_trust
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
