-- The outbox moves to the table every service shares (service_kit::outbox, created by the
-- kit's migrations, which run first): what was not yet published moves over in its order.
INSERT INTO event_outbox (event_id, topic, message_key, payload, traceparent, created_at)
SELECT event_id, topic, message_key, payload, traceparent, created_at
FROM outbox
WHERE sent_at IS NULL
ORDER BY seq;
DROP TABLE outbox;
