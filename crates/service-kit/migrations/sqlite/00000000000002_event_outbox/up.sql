-- The transactional outbox every producing service shares (service_kit::outbox): an event is
-- written here in the transaction of its cause and published by the relay, in seq order,
-- marked sent only after the brokers acknowledged it. A row that can never be published is
-- set aside (dead_at, dead_reason) instead of blocking the rows behind it.
CREATE TABLE event_outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL UNIQUE,
    topic        TEXT    NOT NULL,
    message_key  TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    traceparent  TEXT,
    created_at   BIGINT  NOT NULL,
    sent_at      BIGINT,
    dead_at      BIGINT,
    dead_reason  TEXT
);
CREATE INDEX event_outbox_pending ON event_outbox (seq) WHERE sent_at IS NULL AND dead_at IS NULL;
CREATE INDEX event_outbox_sent ON event_outbox (sent_at) WHERE sent_at IS NOT NULL;
