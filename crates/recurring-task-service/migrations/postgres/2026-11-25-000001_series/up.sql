-- One row per recurring series: who owns it, where its rule starts, and its current rule and
-- template (from the task event with the highest occurrence index and version).
CREATE TABLE series (
    series_id     TEXT    PRIMARY KEY NOT NULL,
    user_id       TEXT    NOT NULL,
    series_start  BIGINT  NOT NULL,
    start_index   BIGINT  NOT NULL,
    head_index    BIGINT  NOT NULL,
    head_version  BIGINT  NOT NULL,
    recurrence    TEXT,
    template      TEXT    NOT NULL,
    ended_at      BIGINT,
    end_reason    TEXT,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);
CREATE INDEX series_by_user ON series (user_id);

-- The last known state of each task of a series, last writer (highest version) wins.
CREATE TABLE occurrences (
    task_id          TEXT    PRIMARY KEY NOT NULL,
    series_id        TEXT    NOT NULL,
    user_id          TEXT    NOT NULL,
    occurrence_index BIGINT  NOT NULL,
    version          BIGINT  NOT NULL,
    status           TEXT    NOT NULL,
    due_date         BIGINT,
    completed_at     BIGINT,
    recurrence       TEXT,
    template         TEXT    NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX occurrences_by_series ON occurrences (series_id, occurrence_index);

-- The exactly-once ledger and outbox of next occurrences: the primary key allows one next
-- occurrence per (series, index) whatever is replayed; rows with no published_at are still
-- to be published by the relay.
CREATE TABLE next_occurrences (
    series_id        TEXT    NOT NULL,
    occurrence_index BIGINT  NOT NULL,
    task_id          TEXT    NOT NULL UNIQUE,
    user_id          TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    source_task_id   TEXT    NOT NULL,
    source_event_id  TEXT    NOT NULL,
    due_date         BIGINT,
    payload          TEXT    NOT NULL,
    traceparent      TEXT,
    created_at       BIGINT  NOT NULL,
    published_at     BIGINT,
    publish_attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (series_id, occurrence_index)
);
CREATE INDEX next_occurrences_pending ON next_occurrences (created_at) WHERE published_at IS NULL;
