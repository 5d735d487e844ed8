-- Who may read a task's history besides its owner (issue 20): the collaborators named by the
-- newest task event that carried them, kept from the events themselves (event-carried state).
CREATE TABLE task_access (
    task_id        TEXT    PRIMARY KEY,
    version        BIGINT  NOT NULL,
    collaborators  TEXT    NOT NULL
);
