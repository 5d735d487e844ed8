//! The task operations every interface offers (REST today through [`super::tasks`], MCP through
//! [`crate::mcp`]), each one call of the same [`crate::changes::tasks`] function or storage
//! query, with the same parsing ([`crate::domain`]) and the same problems. An interface only
//! translates its own input (headers, path, tool arguments) into these calls and their answer
//! into its own output, so a change of the write path is made once, here.

use sha2::{Digest, Sha256};

use super::views::TaskPage;
use super::{AppState, path_id, storage_problem};
use crate::changes::shares::{self as share_changes, ShareTask, Shared, Unshare};
use crate::changes::tasks::{
    self as task_changes, CreateTask, Created, EditTask, StatusChange, TaskAction,
};
use crate::domain::query::{Cursor, RawTaskQuery, TaskQuery};
use crate::domain::share::{ShareRequest, ShareTarget, ShareView};
use crate::domain::task::{CreateTaskRequest, Task, TaskFields, UpdateTaskRequest};
use crate::storage::{tasks, users};
use service_kit::http::Problem;

pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Who asks, and the trace the resulting events carry.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    /// W3C `traceparent` of the request.
    pub traceparent: String,
}

/// An idempotency key as given (header or tool argument): 1 to 255 visible ASCII characters.
pub fn idempotency_key(value: &str, name: &str) -> Result<String, Problem> {
    let key = value.trim();
    if !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
    {
        Ok(key.to_owned())
    } else {
        let message = format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters");
        Err(Problem::bad_request(format!("{name} {message}")).field(name, message))
    }
}

/// The user's time zone, read only when a recurrence needs it (it names no zone of its own).
pub async fn default_timezone(
    state: &AppState,
    user_id: &str,
    needed: bool,
) -> Result<String, Problem> {
    if !needed {
        return Ok("UTC".to_owned());
    }
    user_timezone(state, user_id).await
}

/// The IANA time zone of the user's profile.
pub async fn user_timezone(state: &AppState, user_id: &str) -> Result<String, Problem> {
    let id = user_id.to_owned();
    state
        .db
        .run(move |conn| users::timezone(conn, &id))
        .await
        .map_err(storage_problem)
}

/// Create a task (announced on task.created). With an idempotency key, repeating the same
/// request returns the first answer and creates nothing; the key with another request is a
/// 422 problem.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    request: &CreateTaskRequest,
    idempotency_key: Option<String>,
) -> Result<Created, Problem> {
    super::channels::refuse_in_reminders(state, request.reminders.as_deref())?;
    let needs_zone = request
        .recurrence
        .as_ref()
        .is_some_and(|r| r.timezone.is_none());
    let zone = default_timezone(state, &caller.user_id, needs_zone).await?;
    let fields = TaskFields::parse_new(request, &zone)?;
    let idempotency = idempotency_key.map(|k| {
        let hash = hex::encode(Sha256::digest(
            serde_json::to_vec(request).unwrap_or_default(),
        ));
        (k, hash)
    });
    let created = task_changes::create(
        &state.writes,
        CreateTask {
            user_id: caller.user_id.clone(),
            fields,
            idempotency,
            traceparent: caller.traceparent.clone(),
        },
    )
    .await?;
    if matches!(created, Created::New { .. }) {
        state.wake_relay();
    }
    Ok(created)
}

/// One page of the caller's tasks matching the filters.
pub async fn list(state: &AppState, user_id: &str, raw: RawTaskQuery) -> Result<TaskPage, Problem> {
    let query = TaskQuery::try_from(raw)?;
    let user = user_id.to_owned();
    let (limit, sort) = (query.limit as usize, query.sort);
    let mut rows = state
        .db
        .run(move |conn| tasks::list(conn, &user, &query))
        .await
        .map_err(storage_problem)?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|t| {
            Cursor {
                sort,
                key: tasks::sort_key(t, sort.field),
                id: t.id.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    Ok(TaskPage {
        items: rows.iter().map(|t| t.view_for(user_id)).collect(),
        next_cursor,
    })
}

/// A task the caller may see (theirs or shared with them); any other is "not found".
pub async fn get(state: &AppState, user_id: &str, id: &str) -> Result<Task, Problem> {
    let (user, id) = (user_id.to_owned(), path_id(id, "task")?);
    state
        .db
        .run(move |conn| tasks::get(conn, &user, &id))
        .await
        .map_err(storage_problem)?
        .map(|(task, _)| task)
        .ok_or_else(|| Problem::not_found("task"))
}

/// Change the fields present in `request` (announced on task.updated when anything changed).
pub async fn edit(
    state: &AppState,
    caller: &Caller,
    id: &str,
    if_match: Option<i64>,
    request: UpdateTaskRequest,
) -> Result<Task, Problem> {
    let task_id = path_id(id, "task")?;
    super::channels::refuse_in_reminders(state, request.reminders.as_deref())?;
    let needs_zone = matches!(&request.recurrence, Some(Some(r)) if r.timezone.is_none());
    let zone = default_timezone(state, &caller.user_id, needs_zone).await?;
    let task = task_changes::edit(
        &state.writes,
        EditTask {
            user_id: caller.user_id.clone(),
            task_id,
            if_match,
            request,
            default_timezone: zone,
            traceparent: caller.traceparent.clone(),
        },
    )
    .await?;
    state.wake_relay();
    Ok(task)
}

fn action(caller: &Caller, id: &str, if_match: Option<i64>) -> Result<TaskAction, Problem> {
    Ok(TaskAction {
        user_id: caller.user_id.clone(),
        task_id: path_id(id, "task")?,
        if_match,
        traceparent: caller.traceparent.clone(),
    })
}

/// Complete (task.completed) or reopen (task.updated); a task already so changes nothing.
pub async fn set_status(
    state: &AppState,
    caller: &Caller,
    id: &str,
    if_match: Option<i64>,
    change: StatusChange,
) -> Result<Task, Problem> {
    let cmd = action(caller, id, if_match)?;
    let task = task_changes::set_status(&state.writes, cmd, change).await?;
    state.wake_relay();
    Ok(task)
}

/// Delete (task.deleted).
pub async fn delete(
    state: &AppState,
    caller: &Caller,
    id: &str,
    if_match: Option<i64>,
) -> Result<(), Problem> {
    let cmd = action(caller, id, if_match)?;
    task_changes::delete(&state.writes, cmd).await?;
    state.wake_relay();
    Ok(())
}

/// Share a task with the user of an email as viewer or editor (announced on task.shared), or
/// invite the email when it has no account. Only the owner shares.
pub async fn share(
    state: &AppState,
    caller: &Caller,
    id: &str,
    if_match: Option<i64>,
    request: &ShareRequest,
) -> Result<Shared, Problem> {
    let cmd = ShareTask {
        caller: caller.user_id.clone(),
        task_id: path_id(id, "task")?,
        share: request.parse()?,
        if_match,
        traceparent: caller.traceparent.clone(),
    };
    let shared = share_changes::share(&state.writes, cmd).await?;
    if shared.changed {
        state.wake_relay();
    }
    Ok(shared)
}

/// The shares of a task the caller may see.
pub async fn shares(state: &AppState, user_id: &str, id: &str) -> Result<Vec<ShareView>, Problem> {
    let (user, id) = (user_id.to_owned(), path_id(id, "task")?);
    state
        .db
        .run(move |conn| share_changes::list_in(conn, &user, &id))
        .await
        .map_err(storage_problem)?
        .ok_or_else(|| Problem::not_found("task"))
}

/// The share of `email` (any case) on a task the caller may see, if there is one: how a client
/// that knows people by email (MCP, the CLI) names a collaborator.
pub async fn share_of(
    state: &AppState,
    user_id: &str,
    id: &str,
    email: &str,
) -> Result<Option<ShareView>, Problem> {
    let email = email.trim().to_lowercase();
    Ok(shares(state, user_id, id)
        .await?
        .into_iter()
        .find(|s| s.email == email))
}

/// Remove a share (announced on task.shared with role `none`) or an invitation: the owner
/// removes any, a collaborator their own.
pub async fn unshare(
    state: &AppState,
    caller: &Caller,
    id: &str,
    who: &str,
    if_match: Option<i64>,
) -> Result<(), Problem> {
    let cmd = Unshare {
        caller: caller.user_id.clone(),
        task_id: path_id(id, "task")?,
        target: ShareTarget::parse(who).map_err(|_| Problem::not_found("share"))?,
        if_match,
        traceparent: caller.traceparent.clone(),
    };
    share_changes::unshare(&state.writes, cmd).await?;
    state.wake_relay();
    Ok(())
}
