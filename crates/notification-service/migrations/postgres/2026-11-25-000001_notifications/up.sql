-- What the service knows of each user, from user.registered / user.updated (newest profile wins).
CREATE TABLE users (
    user_id         TEXT PRIMARY KEY,
    email           TEXT    NOT NULL,
    name            TEXT,
    timezone        TEXT    NOT NULL,
    -- Comma-separated channels the user accepts: EMAIL,WEBHOOK,IN_APP.
    channels        TEXT    NOT NULL,
    webhook_url     TEXT,
    -- 0 for a profile known from user.registered only.
    profile_version BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);

-- The newest version seen of each task (a tombstone once deleted), so that an older event
-- arriving late on another topic changes nothing.
CREATE TABLE tasks (
    task_id    TEXT PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    title      TEXT    NOT NULL,
    due_date   BIGINT,
    state      TEXT    NOT NULL,
    version    BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- The durable schedule: one row per (task, remind-at time, channel), id deterministic.
CREATE TABLE reminders (
    reminder_id  TEXT PRIMARY KEY,
    task_id      TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    remind_at    BIGINT  NOT NULL,
    state        TEXT    NOT NULL,
    task_version BIGINT  NOT NULL,
    task_title   TEXT    NOT NULL,
    due_date     BIGINT,
    traceparent  TEXT,
    fired_at     BIGINT,
    late         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX reminders_due ON reminders (remind_at) WHERE state = 'scheduled';
CREATE INDEX reminders_by_task ON reminders (task_id);

-- One delivery per notification id (reminder and channel): a job queue with durable retries,
-- and what GET /api/notifications shows.
CREATE TABLE deliveries (
    seq             BIGSERIAL PRIMARY KEY,
    notification_id TEXT    NOT NULL UNIQUE,
    reminder_id     TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    task_id         TEXT    NOT NULL,
    task_title      TEXT    NOT NULL,
    task_version    BIGINT  NOT NULL,
    due_date        BIGINT,
    channel         TEXT    NOT NULL,
    remind_at       BIGINT  NOT NULL,
    fired_at        BIGINT  NOT NULL,
    late            BOOLEAN NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    -- Pending: when the next attempt may start (while an attempt runs: the end of its lease).
    next_attempt_at BIGINT,
    last_error      TEXT,
    traceparent     TEXT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    finished_at     BIGINT
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_user ON deliveries (user_id, seq);

-- Events written in the transaction of their cause, published by the relay afterwards.
CREATE TABLE outbox (
    seq         BIGSERIAL PRIMARY KEY,
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
