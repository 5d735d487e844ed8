-- Sharing and assignment (issue 20). The task row holds its collaborators as JSON (what its
-- events carry, like tags); task_members indexes them for "what may this user see", and
-- task_invitations holds shares with an email that has no account yet.
ALTER TABLE tasks ADD COLUMN collaborators TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN assignee_id TEXT;
CREATE INDEX tasks_by_assignee ON tasks (assignee_id) WHERE assignee_id IS NOT NULL;

CREATE TABLE task_members (
    task_id  TEXT   NOT NULL,
    user_id  TEXT   NOT NULL,
    role     TEXT   NOT NULL,
    PRIMARY KEY (task_id, user_id)
);
CREATE INDEX task_members_by_user ON task_members (user_id, task_id);

CREATE TABLE task_invitations (
    task_id     TEXT    NOT NULL,
    email       TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    invited_at  BIGINT  NOT NULL,
    PRIMARY KEY (task_id, email)
);
CREATE INDEX task_invitations_by_email ON task_invitations (email);
