-- Web Push (issue 23). The user's subscriptions as the last applied user.updated listed them
-- (task-api owns them); the auth secret stays sealed as it came (service_kit::push) and is
-- opened only to send.
CREATE TABLE push_subscriptions (
    user_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth_sealed TEXT NOT NULL,
    PRIMARY KEY (user_id, endpoint)
);

-- Endpoints a push service answered 404 or 410 for: gone for good (RFC 8030 §7.3; a browser
-- that subscribes again gets a new endpoint). A later profile that still lists one (task-api
-- has not heard yet, or a replay) does not bring it back.
CREATE TABLE push_gone (
    endpoint TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    gone_at BIGINT NOT NULL
);
