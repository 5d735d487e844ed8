//! Task changes: create (with Idempotency-Key), edit, complete, reopen, delete. Each writes the
//! task and its event in one transaction; versions make concurrent edits safe.

use events::{Role, now_millis};
use service_kit::db::DbConnection;

use super::group_commit::GroupCommit;
use super::{ChangeError, retrying};
use crate::domain::invalid;
use crate::domain::task::{Task, TaskFields, UpdateTaskRequest};
use crate::storage::idempotency::{self, StoredResponse};
use crate::storage::{categories, is_unique_violation, tasks};
use service_kit::outbox::{self, NewOutboxRow};

/// `POST /api/tasks`, parsed.
#[derive(Debug, Clone)]
pub struct CreateTask {
    pub user_id: String,
    pub fields: TaskFields,
    /// `Idempotency-Key` and the hash of the request it came with.
    pub idempotency: Option<(String, String)>,
    pub traceparent: String,
}

/// What a create answered.
#[derive(Debug, Clone)]
pub enum Created {
    /// A new task, and the JSON body of the 201 (remembered for replays).
    New { task: Box<Task>, body: String },
    /// The first response to this Idempotency-Key, again; nothing was created.
    Replayed { status: u16, body: String },
}

fn category_exists(
    conn: &mut DbConnection,
    user_id: &str,
    category_id: Option<&str>,
) -> Result<bool, ChangeError> {
    match category_id {
        None => Ok(true),
        Some(c) => Ok(categories::get(conn, user_id, c)?.is_some()),
    }
}

fn no_such_category() -> ChangeError {
    ChangeError::Invalid(invalid(
        "category_id",
        "is not one of your categories (GET /api/categories)",
    ))
}

/// What a create will write, once checked: nothing (a replayed key) or a new task with its
/// event and, under an Idempotency-Key, the response to remember.
enum Checked {
    Replayed(Created),
    New(Box<NewTask>),
}

struct NewTask {
    task: Task,
    /// The 201's body.
    body: String,
    event: NewOutboxRow,
    response: Option<StoredResponse>,
}

/// Check a create against stored state (its Idempotency-Key, its category) and prepare its
/// rows, writing nothing.
fn check_create(conn: &mut DbConnection, cmd: &CreateTask) -> Result<Checked, ChangeError> {
    if let Some((key, hash)) = &cmd.idempotency
        && let Some(stored) = idempotency::find(conn, &cmd.user_id, key)?
    {
        return if stored.request_hash == *hash {
            Ok(Checked::Replayed(Created::Replayed {
                status: u16::try_from(stored.response_status).unwrap_or(201),
                body: stored.response_body,
            }))
        } else {
            Err(ChangeError::Conflict {
                slug: "idempotency-key-reused",
                detail: "this Idempotency-Key was used for a different request; \
                             use a new key for a new request"
                    .to_owned(),
            })
        };
    }
    if !category_exists(conn, &cmd.user_id, cmd.fields.category_id.as_deref())? {
        return Err(no_such_category());
    }
    let task = Task::new(&cmd.user_id, cmd.fields.clone(), now_millis());
    let event = NewOutboxRow::of(&task.created_event(), Some(&cmd.traceparent))?;
    let body = serde_json::to_string(&task.view()).unwrap_or_default();
    let response = cmd.idempotency.as_ref().map(|(key, hash)| StoredResponse {
        user_id: cmd.user_id.clone(),
        idempotency_key: key.clone(),
        request_hash: hash.clone(),
        response_status: 201,
        response_body: body.clone(),
        created_at: task.created_at,
    });
    Ok(Checked::New(Box::new(NewTask {
        task,
        body,
        event,
        response,
    })))
}

/// One create in its own (sub)transaction.
pub(crate) fn create_in(conn: &mut DbConnection, cmd: &CreateTask) -> Result<Created, ChangeError> {
    match check_create(conn, cmd)? {
        Checked::Replayed(created) => Ok(created),
        Checked::New(new) => {
            let NewTask {
                task,
                body,
                event,
                response,
            } = *new;
            tasks::insert_new(conn, std::slice::from_ref(&task))?;
            outbox::store::insert_new(conn, &[event])?;
            if let Some(response) = response {
                idempotency::remember_all(conn, &[response])?;
            }
            Ok(Created::New {
                task: Box::new(task),
                body,
            })
        }
    }
}

/// How one create of a batch written together came out.
pub(crate) enum BatchedCreate {
    Done(Result<Created, ChangeError>),
    /// Its Idempotency-Key is an earlier create's of the same batch: run it after the batch's
    /// rows are written (it then finds the first response to replay).
    After,
}

/// The creates of one group-commit batch: each checked on its own, then every new task, event
/// and remembered response written with a few multi-row INSERTs per table (instead of four or
/// five statements per create). A storage error fails the whole call: the caller rolls back and runs
/// each create alone, so that one bad create still fails alone.
pub(crate) fn create_batch(
    conn: &mut DbConnection,
    cmds: &[&CreateTask],
) -> Result<Vec<BatchedCreate>, ChangeError> {
    let mut outcomes = Vec::with_capacity(cmds.len());
    let mut keys = std::collections::HashSet::new();
    let (mut new_tasks, mut events, mut responses) = (Vec::new(), Vec::new(), Vec::new());
    // Index into new_tasks of each outcome still to be filled in with its task.
    let mut pending: Vec<(usize, String)> = Vec::new();
    for cmd in cmds {
        if let Some((key, _)) = &cmd.idempotency
            && !keys.insert((cmd.user_id.as_str(), key.as_str()))
        {
            outcomes.push(BatchedCreate::After);
            continue;
        }
        match check_create(conn, cmd) {
            Ok(Checked::Replayed(created)) => outcomes.push(BatchedCreate::Done(Ok(created))),
            Ok(Checked::New(new)) => {
                let NewTask {
                    task,
                    body,
                    event,
                    response,
                } = *new;
                pending.push((outcomes.len(), body));
                outcomes.push(BatchedCreate::After); // filled in below
                new_tasks.push(task);
                events.push(event);
                responses.extend(response);
            }
            Err(e @ ChangeError::Storage(_)) => return Err(e),
            Err(refused) => outcomes.push(BatchedCreate::Done(Err(refused))),
        }
    }
    tasks::insert_new(conn, &new_tasks)?;
    // The events were made just now: their ids are new.
    outbox::store::insert_new(conn, &events)?;
    idempotency::remember_all(conn, &responses)?;
    for ((at, body), task) in pending.into_iter().zip(new_tasks) {
        outcomes[at] = BatchedCreate::Done(Ok(Created::New {
            task: Box::new(task),
            body,
        }));
    }
    Ok(outcomes)
}

pub async fn create(writes: &GroupCommit, cmd: CreateTask) -> Result<Created, ChangeError> {
    match writes.create(cmd.clone()).await {
        // A concurrent request with the same key committed first: this one rolled back whole,
        // and now finds that request's response to replay.
        Err(ChangeError::Storage(e)) if cmd.idempotency.is_some() && is_unique_violation(&e) => {
            writes.create(cmd).await
        }
        other => other,
    }
}

/// `If-Match`: `None` matches any version.
pub(super) fn check_version(task: &Task, if_match: Option<i64>) -> Result<(), ChangeError> {
    match if_match {
        Some(v) if v != task.version => Err(ChangeError::PreconditionFailed {
            current: task.version,
        }),
        _ => Ok(()),
    }
}

/// `PATCH /api/tasks/{id}`, parsed as far as it can be without the stored task.
#[derive(Debug, Clone)]
pub struct EditTask {
    pub user_id: String,
    pub task_id: String,
    pub if_match: Option<i64>,
    pub request: UpdateTaskRequest,
    /// The user's time zone, for a recurrence that names none.
    pub default_timezone: String,
    pub traceparent: String,
}

/// Whom `role` (the caller, `caller`) may make the assignee of `task`: the owner anyone who may
/// see the task, or nobody; a collaborator only themself, or nobody in their own place.
fn check_assignee(
    task: &Task,
    role: Role,
    caller: &str,
    assignee: Option<&str>,
) -> Result<(), ChangeError> {
    let allowed = match role {
        Role::Owner => {
            return match assignee {
                Some(user) if task.role_of(user).is_none() => Err(ChangeError::Invalid(invalid(
                    "assignee_id",
                    "is neither the task's owner nor one of its collaborators; share the task first",
                ))),
                _ => Ok(()),
            };
        }
        Role::Editor | Role::Viewer => match assignee {
            Some(user) => user == caller,
            None => task.assignee_id.as_deref() == Some(caller),
        },
    };
    // Forbidden reads as absent, as everywhere else a caller may not act.
    if allowed {
        Ok(())
    } else {
        Err(ChangeError::NotFound("task"))
    }
}

fn edit_in(conn: &mut DbConnection, cmd: &EditTask) -> Result<Task, ChangeError> {
    let Some((task, role)) = tasks::get(conn, &cmd.user_id, &cmd.task_id)? else {
        return Err(ChangeError::NotFound("task"));
    };
    // A viewer may only take the task (assignee_id); any other field is an editor's.
    if cmd.request.touches_fields() && !role.may_edit() {
        return Err(ChangeError::NotFound("task"));
    }
    check_version(&task, cmd.if_match)?;
    let fields = task.fields.apply(&cmd.request, &cmd.default_timezone)?;
    // Categories are the owner's, whoever edits.
    if fields.category_id != task.fields.category_id
        && !category_exists(conn, &task.user_id, fields.category_id.as_deref())?
    {
        return Err(no_such_category());
    }
    let assignee = cmd.request.assignee()?;
    if let Some(assignee) = &assignee {
        check_assignee(&task, role, &cmd.user_id, assignee.as_deref())?;
    }
    let now = now_millis();
    let (edited, changed) = task.edited(fields, now);
    let assigned = assignee
        .as_ref()
        .and_then(|a| edited.assigned(a.as_deref(), now));
    let last = assigned.as_ref().unwrap_or(&edited);
    if last.version == task.version {
        return Ok(task);
    }
    if !tasks::update(conn, last, task.version)? {
        return Err(ChangeError::Raced);
    }
    // One event per change, each with its own version: the fields first, then the assignee.
    let tp = Some(cmd.traceparent.as_str());
    if !changed.is_empty() {
        outbox::enqueue(conn, &edited.updated_event(changed, &cmd.user_id), tp)?;
    }
    if let Some(assigned) = &assigned {
        let event = assigned.assigned_event(edited.assignee_id.clone(), &cmd.user_id);
        outbox::enqueue(conn, &event, tp)?;
    }
    Ok(last.clone())
}

pub async fn edit(writes: &GroupCommit, cmd: EditTask) -> Result<Task, ChangeError> {
    retrying(|| {
        let cmd = cmd.clone();
        writes.run(move |conn| edit_in(conn, &cmd))
    })
    .await
}

/// Complete, reopen or delete one task.
#[derive(Debug, Clone)]
pub struct TaskAction {
    pub user_id: String,
    pub task_id: String,
    pub if_match: Option<i64>,
    pub traceparent: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    Complete,
    Reopen,
}

fn set_status_in(
    conn: &mut DbConnection,
    cmd: &TaskAction,
    change: StatusChange,
) -> Result<Task, ChangeError> {
    let task = match tasks::get(conn, &cmd.user_id, &cmd.task_id)? {
        Some((task, role)) if role.may_edit() => task,
        _ => return Err(ChangeError::NotFound("task")),
    };
    check_version(&task, cmd.if_match)?;
    let now = now_millis();
    let next = match change {
        StatusChange::Complete => task.completed(now),
        StatusChange::Reopen => task.reopened(now),
    };
    // Already in that state: nothing changes and nothing is announced.
    let Some(next) = next else {
        return Ok(task);
    };
    if !tasks::update(conn, &next, task.version)? {
        return Err(ChangeError::Raced);
    }
    let tp = Some(cmd.traceparent.as_str());
    match change {
        StatusChange::Complete => {
            outbox::enqueue(conn, &next.completed_event(&cmd.user_id), tp)?;
        }
        StatusChange::Reopen => outbox::enqueue(
            conn,
            &next.updated_event(
                vec!["status".to_owned(), "completedAt".to_owned()],
                &cmd.user_id,
            ),
            tp,
        )?,
    }
    Ok(next)
}

pub async fn set_status(
    writes: &GroupCommit,
    cmd: TaskAction,
    change: StatusChange,
) -> Result<Task, ChangeError> {
    retrying(|| {
        let cmd = cmd.clone();
        writes.run(move |conn| set_status_in(conn, &cmd, change))
    })
    .await
}

fn delete_in(conn: &mut DbConnection, cmd: &TaskAction) -> Result<(), ChangeError> {
    // Only the owner deletes.
    let task = match tasks::get(conn, &cmd.user_id, &cmd.task_id)? {
        Some((task, Role::Owner)) => task,
        _ => return Err(ChangeError::NotFound("task")),
    };
    check_version(&task, cmd.if_match)?;
    if !tasks::delete(conn, &task)? {
        return Err(ChangeError::Raced);
    }
    outbox::enqueue(
        conn,
        &task.deleted_event(now_millis()),
        Some(&cmd.traceparent),
    )?;
    Ok(())
}

pub async fn delete(writes: &GroupCommit, cmd: TaskAction) -> Result<(), ChangeError> {
    retrying(|| {
        let cmd = cmd.clone();
        writes.run(move |conn| delete_in(conn, &cmd))
    })
    .await
}
