-- Events a consumer has applied, keyed by (consumer, event id): inserted in the same
-- transaction as the event's effects, so a replayed event finds its row and has no second effect.
CREATE TABLE inbox (
    consumer     TEXT   NOT NULL,
    event_id     TEXT   NOT NULL,
    topic        TEXT   NOT NULL,
    processed_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
