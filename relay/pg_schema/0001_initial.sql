-- The relay's state on PostgreSQL (relay/pg_store.py): the same tables as relay/sqlite_store.py
-- plus the replicas' leases. Applied by `gateway db migrate` in one transaction.

CREATE TABLE messages (
    row BIGSERIAL PRIMARY KEY,
    id BYTEA NOT NULL,
    role TEXT NOT NULL,
    state TEXT NOT NULL,
    src_chain TEXT NOT NULL,
    dst_chain TEXT NOT NULL,
    message TEXT,
    result TEXT,
    ack_status INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_try_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    state_since DOUBLE PRECISION NOT NULL,
    UNIQUE (id, role)
);
CREATE INDEX messages_due ON messages (role, state, next_try_at);
CREATE INDEX messages_created ON messages (created_at);
CREATE INDEX messages_since ON messages (state_since);

-- seq is taken under the store's write lock, so seqs commit in order (WatchMessages resumes
-- after a seq it has seen and must never miss a later commit of a smaller one).
CREATE TABLE history (
    seq BIGSERIAL PRIMARY KEY,
    id BYTEA NOT NULL,
    role TEXT NOT NULL,
    state TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    height BIGINT,
    tx_hash TEXT,
    error TEXT,
    src_chain TEXT NOT NULL,
    dst_chain TEXT NOT NULL
);
CREATE INDEX history_id ON history (id);

CREATE TABLE evidence (
    id BYTEA NOT NULL,
    hop TEXT NOT NULL,
    bundle TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (id, hop)
);

CREATE TABLE rejected (
    n BIGSERIAL PRIMARY KEY,
    id BYTEA NOT NULL,
    role TEXT NOT NULL,
    hop TEXT NOT NULL,
    check_name TEXT NOT NULL,
    reason TEXT NOT NULL,
    peer TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX rejected_id ON rejected (id);

CREATE TABLE facts (
    id BYTEA NOT NULL,
    hop TEXT NOT NULL,
    locator TEXT NOT NULL,
    PRIMARY KEY (id, hop)
);

CREATE TABLE cursors (
    chain TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

-- One active replica per gateway: the lease named after the gateway, timed by this server's
-- clock; token increases every time the lease is taken anew (fencing).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

-- The audit trail (relay/audit.py, docs/audit.md). record is the canonical line, kept byte
-- for byte; doc is the same as jsonb for the auditor's filters.
CREATE TABLE audit_records (
    seq BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    record TEXT NOT NULL,
    doc JSONB GENERATED ALWAYS AS (record::jsonb) STORED
);
CREATE INDEX audit_records_message ON audit_records ((doc ->> 'message_id'));
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    checkpoint TEXT NOT NULL
);
CREATE TABLE audit_evidence (digest TEXT PRIMARY KEY, bundle TEXT NOT NULL);
CREATE TABLE audit_trust (digest TEXT PRIMARY KEY, trust TEXT NOT NULL);

-- Append-only: nothing in the gateway updates or deletes audit records, and this refuses it
-- from anyone else's SQL too.
CREATE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END;
$$;
CREATE TRIGGER audit_records_no_change BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
