ALTER TABLE deliveries DROP COLUMN actor_id;
ALTER TABLE deliveries DROP COLUMN kind;
