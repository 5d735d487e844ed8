DROP TABLE task_invitations;
DROP TABLE task_members;
DROP INDEX tasks_by_assignee;
ALTER TABLE tasks DROP COLUMN assignee_id;
ALTER TABLE tasks DROP COLUMN collaborators;
