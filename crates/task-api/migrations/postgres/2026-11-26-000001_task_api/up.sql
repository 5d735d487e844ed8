-- Users, their categories and tasks, idempotency keys, and the transactional outbox.
-- Times are epoch milliseconds (BIGINT), ids TEXT (UUIDs), lists JSON text.
CREATE TABLE users (
    id                    TEXT    PRIMARY KEY,
    email                 TEXT    NOT NULL UNIQUE,
    password_hash         TEXT    NOT NULL,
    name                  TEXT,
    timezone              TEXT    NOT NULL,
    notification_channels TEXT    NOT NULL,
    webhook_url           TEXT,
    version               BIGINT  NOT NULL,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL
);

CREATE TABLE categories (
    id          TEXT    PRIMARY KEY,
    user_id     TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE tasks (
    id               TEXT    PRIMARY KEY,
    user_id          TEXT    NOT NULL,
    title            TEXT    NOT NULL,
    description      TEXT,
    priority         TEXT    NOT NULL,
    -- low 0 … critical 3, so that sorting by priority is sorting by a number.
    priority_rank    BIGINT  NOT NULL,
    status           TEXT    NOT NULL,
    due_at           BIGINT,
    -- due_at, or the largest BIGINT when there is none: a NOT NULL sort key for keyset pages.
    due_sort         BIGINT  NOT NULL,
    category_id      TEXT,
    tags             TEXT    NOT NULL,
    recurrence       TEXT,
    reminders        TEXT    NOT NULL,
    series_id        TEXT,
    occurrence_index BIGINT,
    version          BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    completed_at     BIGINT,
    -- Lower-cased title and description, for `q` (one rule for both backends).
    search_text      TEXT    NOT NULL,
    -- task-api, or the producer whose task.created was ingested.
    origin           TEXT    NOT NULL
);
CREATE INDEX tasks_by_created ON tasks (user_id, created_at, id);
CREATE INDEX tasks_by_updated ON tasks (user_id, updated_at, id);
CREATE INDEX tasks_by_due ON tasks (user_id, due_sort, id);
CREATE INDEX tasks_by_priority ON tasks (user_id, priority_rank, id);

CREATE TABLE task_tags (
    task_id  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    tag      TEXT NOT NULL,
    PRIMARY KEY (task_id, tag)
);
CREATE INDEX task_tags_by_tag ON task_tags (user_id, tag);

CREATE TABLE idempotency_keys (
    user_id          TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    request_hash     TEXT    NOT NULL,
    response_status  INTEGER NOT NULL,
    response_body    TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    PRIMARY KEY (user_id, idempotency_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

CREATE TABLE outbox (
    seq          BIGSERIAL PRIMARY KEY,
    topic        TEXT    NOT NULL,
    message_key  TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    traceparent  TEXT,
    created_at   BIGINT  NOT NULL,
    sent_at      BIGINT
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
