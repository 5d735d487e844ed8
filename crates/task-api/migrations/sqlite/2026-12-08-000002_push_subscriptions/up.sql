-- Web Push subscriptions (issue 23), several per user (one per browser). The auth secret is
-- kept sealed (service_kit::push), as it travels on user.updated.
CREATE TABLE push_subscriptions (
    id          TEXT    PRIMARY KEY,
    user_id     TEXT    NOT NULL,
    endpoint    TEXT    NOT NULL,
    p256dh      TEXT    NOT NULL,
    auth_sealed TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    UNIQUE (user_id, endpoint)
);
