-- The rows set aside, for the monitor's count of them (outbox_dead_rows) every second: without
-- it that count read the whole table, sent rows kept for a day included.
CREATE INDEX event_outbox_dead ON event_outbox (seq) WHERE dead_at IS NOT NULL;
