DROP TABLE task_access;
