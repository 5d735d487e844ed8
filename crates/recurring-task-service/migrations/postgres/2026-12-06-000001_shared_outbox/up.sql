-- Next occurrences are published through the outbox every service shares (service_kit::outbox,
-- created by the kit's migrations, which run first): what was not yet published moves there in
-- its order (task.created is keyed by userId), and the ledger keeps only what it is for.
INSERT INTO event_outbox (event_id, topic, message_key, payload, traceparent, created_at)
SELECT event_id, 'task.created', user_id, payload, traceparent, created_at
FROM next_occurrences
WHERE published_at IS NULL
ORDER BY created_at;
DROP INDEX next_occurrences_pending;
ALTER TABLE next_occurrences DROP COLUMN payload;
ALTER TABLE next_occurrences DROP COLUMN traceparent;
ALTER TABLE next_occurrences DROP COLUMN published_at;
ALTER TABLE next_occurrences DROP COLUMN publish_attempts;
