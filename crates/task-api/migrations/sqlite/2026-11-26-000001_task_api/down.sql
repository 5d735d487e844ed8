DROP TABLE outbox; DROP TABLE idempotency_keys; DROP TABLE task_tags; DROP TABLE tasks; DROP TABLE categories; DROP TABLE users;
