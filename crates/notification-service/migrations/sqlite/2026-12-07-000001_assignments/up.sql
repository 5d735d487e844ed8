-- "Assigned to you" (issue 20): a delivery is about a reminder (kind 'reminder') or an
-- assignment ('assigned', reminder_id then holds the assignment's derived id); actor_id names
-- who assigned, for the message.
ALTER TABLE deliveries ADD COLUMN kind TEXT NOT NULL DEFAULT 'reminder';
ALTER TABLE deliveries ADD COLUMN actor_id TEXT;
