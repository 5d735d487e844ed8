DROP TABLE outbox;
DROP TABLE deliveries;
DROP TABLE reminders;
DROP TABLE tasks;
DROP TABLE users;
