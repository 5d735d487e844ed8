CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT    NOT NULL UNIQUE,
    topic       TEXT    NOT NULL,
    message_key TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    traceparent TEXT,
    created_at  BIGINT  NOT NULL,
    lease_until BIGINT,
    sent_at     BIGINT
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
