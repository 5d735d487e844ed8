-- Every event the system published, once (event_id is unique), never changed.
CREATE TABLE audit_events (
    seq             BIGSERIAL PRIMARY KEY,
    event_id        TEXT    NOT NULL UNIQUE,
    topic           TEXT    NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset    BIGINT  NOT NULL,
    message_key     TEXT,
    event_type      TEXT    NOT NULL,
    user_id         TEXT,
    task_id         TEXT,
    event_time      BIGINT  NOT NULL,
    recorded_at     BIGINT  NOT NULL,
    schema_id       BIGINT,
    producer        TEXT,
    trace_id        TEXT,
    payload         TEXT    NOT NULL
);
CREATE INDEX audit_events_by_user ON audit_events (user_id, seq);
CREATE INDEX audit_events_by_task ON audit_events (task_id, event_time, seq);

-- Append-only: the database itself refuses to rewrite history.
CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
