ALTER TABLE next_occurrences ADD COLUMN payload TEXT NOT NULL DEFAULT '{}';
ALTER TABLE next_occurrences ADD COLUMN traceparent TEXT;
ALTER TABLE next_occurrences ADD COLUMN published_at BIGINT;
ALTER TABLE next_occurrences ADD COLUMN publish_attempts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX next_occurrences_pending ON next_occurrences (created_at) WHERE published_at IS NULL;
