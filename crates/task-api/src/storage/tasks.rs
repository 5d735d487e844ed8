//! The tasks table (with its tag index table) and the keyset-paged listing.

use diesel::prelude::*;
use events::{Priority, Role, TaskStatus};
use service_kit::db::{DbConnection, DbError};
use service_kit::insert_in_cached_chunks;

use super::corrupt;
use super::schema::{task_members, task_tags, tasks};
use crate::domain::query::{Cursor, OwnerFilter, SortField, TaskQuery};
use crate::domain::task::{Task, TaskFields};

/// `None` is NULL both when changed (`treat_none_as_null`) and when inserted (not `DEFAULT`:
/// with no `DEFAULT` in its rows diesel writes a batch as one multi-row statement on SQLite,
/// which has no `DEFAULT` in `VALUES`; diesel otherwise inserts row by row there).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = tasks)]
#[diesel(treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct TaskRow {
    pub id: String,
    pub user_id: String,
    pub title: String,
    pub description: Option<String>,
    pub priority: String,
    pub priority_rank: i64,
    pub status: String,
    pub due_at: Option<i64>,
    pub due_sort: i64,
    pub category_id: Option<String>,
    pub tags: String,
    pub recurrence: Option<String>,
    pub reminders: String,
    pub series_id: Option<String>,
    pub occurrence_index: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
    pub search_text: String,
    pub origin: String,
    pub collaborators: String,
    pub assignee_id: Option<String>,
}

/// Sort key of tasks without a due date: after every real date.
pub const NO_DUE_DATE: i64 = i64::MAX;

fn json<T: serde::Serialize>(value: &T) -> String {
    // Serialising plain data structs to JSON cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

impl From<&Task> for TaskRow {
    fn from(t: &Task) -> Self {
        let f = &t.fields;
        let search_text = match &f.description {
            Some(d) => format!("{}\n{}", f.title, d).to_lowercase(),
            None => f.title.to_lowercase(),
        };
        TaskRow {
            id: t.id.clone(),
            user_id: t.user_id.clone(),
            title: f.title.clone(),
            description: f.description.clone(),
            priority: f.priority.as_str().to_owned(),
            priority_rank: f.priority.rank(),
            status: t.status.as_str().to_owned(),
            due_at: f.due_at,
            due_sort: f.due_at.unwrap_or(NO_DUE_DATE),
            category_id: f.category_id.clone(),
            tags: json(&f.tags),
            recurrence: f.recurrence.as_ref().map(json),
            reminders: json(&f.reminders),
            series_id: t.series_id.clone(),
            occurrence_index: t.occurrence_index,
            version: t.version,
            created_at: t.created_at,
            updated_at: t.updated_at,
            completed_at: t.completed_at,
            search_text,
            origin: t.origin.clone(),
            collaborators: json(&t.collaborators),
            assignee_id: t.assignee_id.clone(),
        }
    }
}

impl TryFrom<TaskRow> for Task {
    type Error = DbError;

    fn try_from(r: TaskRow) -> Result<Self, DbError> {
        let priority: Priority = r.priority.parse().map_err(|e| corrupt("priority", e))?;
        let status: TaskStatus = r.status.parse().map_err(|e| corrupt("status", e))?;
        Ok(Task {
            fields: TaskFields {
                title: r.title,
                description: r.description,
                priority,
                due_at: r.due_at,
                category_id: r.category_id,
                tags: serde_json::from_str(&r.tags).map_err(|e| corrupt("tags", e))?,
                recurrence: r
                    .recurrence
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| corrupt("recurrence", e))?,
                reminders: serde_json::from_str(&r.reminders)
                    .map_err(|e| corrupt("reminders", e))?,
            },
            id: r.id,
            user_id: r.user_id,
            status,
            series_id: r.series_id,
            occurrence_index: r.occurrence_index,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            completed_at: r.completed_at,
            origin: r.origin,
            collaborators: serde_json::from_str(&r.collaborators)
                .map_err(|e| corrupt("collaborators", e))?,
            assignee_id: r.assignee_id,
        })
    }
}

/// Rewrite the rows that index a task (its tags, its members) from the task itself.
fn replace_index(conn: &mut DbConnection, task: &Task) -> Result<(), DbError> {
    replace_tags(conn, task)?;
    replace_members(conn, task)
}

/// The task's members: who may see it besides the owner, for "shared with me" and access
/// checks. A task has few collaborators, so they are rewritten whole.
fn replace_members(conn: &mut DbConnection, task: &Task) -> Result<(), DbError> {
    diesel::delete(task_members::table.filter(task_members::task_id.eq(&task.id))).execute(conn)?;
    for c in &task.collaborators {
        diesel::insert_into(task_members::table)
            .values((
                task_members::task_id.eq(&task.id),
                task_members::user_id.eq(&c.user_id),
                task_members::role.eq(c.role.as_str()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

fn replace_tags(conn: &mut DbConnection, task: &Task) -> Result<(), DbError> {
    diesel::delete(task_tags::table.filter(task_tags::task_id.eq(&task.id))).execute(conn)?;
    // One statement per tag: diesel's multi-row INSERT does not exist for the multi-backend
    // connection, and a task has at most a few tags.
    for tag in &task.fields.tags {
        diesel::insert_into(task_tags::table)
            .values((
                task_tags::task_id.eq(&task.id),
                task_tags::user_id.eq(&task.user_id),
                task_tags::tag.eq(tag),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn insert(conn: &mut DbConnection, task: &Task) -> Result<(), DbError> {
    diesel::insert_into(tasks::table)
        .values(TaskRow::from(task))
        .execute(conn)?;
    replace_index(conn, task)
}

/// Insert new tasks and their tags (a batch of creates): a few multi-row statements per table,
/// kept prepared ([`service_kit::per_cached_chunk!`]), instead of three statements per task.
pub fn insert_new(conn: &mut DbConnection, new: &[Task]) -> Result<(), DbError> {
    let rows: Vec<TaskRow> = new.iter().map(TaskRow::from).collect();
    insert_in_cached_chunks!(conn, tasks::table, rows);
    let tags: Vec<_> = new
        .iter()
        .flat_map(|t| {
            t.fields.tags.iter().map(|tag| {
                // Owned: a statement is kept prepared by its type, which must not borrow.
                (
                    task_tags::task_id.eq(t.id.clone()),
                    task_tags::user_id.eq(t.user_id.clone()),
                    task_tags::tag.eq(tag.clone()),
                )
            })
        })
        .collect();
    insert_in_cached_chunks!(conn, task_tags::table, tags);
    Ok(())
}

/// Insert a task unless one with its id exists; `true` when inserted. For ingest, where the
/// same task may be announced more than once.
pub fn insert_if_absent(conn: &mut DbConnection, task: &Task) -> Result<bool, DbError> {
    let row = TaskRow::from(task);
    // Diesel cannot express ON CONFLICT for the multi-backend connection: once per backend.
    let inserted = match conn {
        DbConnection::Sqlite(c) => diesel::insert_into(tasks::table)
            .values(&row)
            .on_conflict(tasks::id)
            .do_nothing()
            .execute(c)?,
        DbConnection::Postgresql(c) => diesel::insert_into(tasks::table)
            .values(&row)
            .on_conflict(tasks::id)
            .do_nothing()
            .execute(c)?,
    };
    if inserted == 1 {
        replace_index(conn, task)?;
    }
    Ok(inserted == 1)
}

/// The task with the caller's role, when `user_id` may see it (its owner or a collaborator);
/// `None` otherwise, the same as when it does not exist.
pub fn get(
    conn: &mut DbConnection,
    user_id: &str,
    id: &str,
) -> Result<Option<(Task, Role)>, DbError> {
    let members = task_members::table
        .filter(task_members::user_id.eq(user_id.to_owned()))
        .select(task_members::task_id);
    let task = tasks::table
        .filter(tasks::id.eq(id))
        .filter(tasks::user_id.eq(user_id).or(tasks::id.eq_any(members)))
        .select(TaskRow::as_select())
        .first(conn)
        .optional()?
        .map(Task::try_from)
        .transpose()?;
    Ok(task.and_then(|t| t.role_of(user_id).map(|role| (t, role))))
}

/// The task, whoever may see it: for changes made on a user's behalf by the system (an
/// invitation taking effect), never for a request.
pub fn by_id(conn: &mut DbConnection, id: &str) -> Result<Option<Task>, DbError> {
    tasks::table
        .filter(tasks::id.eq(id))
        .select(TaskRow::as_select())
        .first(conn)
        .optional()?
        .map(Task::try_from)
        .transpose()
}

/// Write `next` over the stored task if it is still at `expected_version`; `false` when a
/// concurrent change got there first.
pub fn update(
    conn: &mut DbConnection,
    next: &Task,
    expected_version: i64,
) -> Result<bool, DbError> {
    let changed = diesel::update(
        tasks::table
            .filter(tasks::id.eq(&next.id))
            .filter(tasks::user_id.eq(&next.user_id))
            .filter(tasks::version.eq(expected_version)),
    )
    .set(TaskRow::from(next))
    .execute(conn)?;
    if changed == 1 {
        replace_index(conn, next)?;
    }
    Ok(changed == 1)
}

/// Delete the task if it is still at `expected_version`; `false` when it changed meanwhile.
pub fn delete(conn: &mut DbConnection, task: &Task) -> Result<bool, DbError> {
    let deleted = diesel::delete(
        tasks::table
            .filter(tasks::id.eq(&task.id))
            .filter(tasks::user_id.eq(&task.user_id))
            .filter(tasks::version.eq(task.version)),
    )
    .execute(conn)?;
    if deleted == 1 {
        diesel::delete(task_tags::table.filter(task_tags::task_id.eq(&task.id))).execute(conn)?;
        diesel::delete(task_members::table.filter(task_members::task_id.eq(&task.id)))
            .execute(conn)?;
        super::shares::forget_invitations(conn, &task.id)?;
    }
    Ok(deleted == 1)
}

/// How many of the user's tasks are in a category.
pub fn count_in_category(
    conn: &mut DbConnection,
    user_id: &str,
    category_id: &str,
) -> Result<i64, DbError> {
    Ok(tasks::table
        .filter(tasks::user_id.eq(user_id))
        .filter(tasks::category_id.eq(category_id))
        .count()
        .get_result(conn)?)
}

/// The sort key of a task under a sort field (what a cursor holds).
pub fn sort_key(task: &Task, field: SortField) -> i64 {
    match field {
        SortField::CreatedAt => task.created_at,
        SortField::UpdatedAt => task.updated_at,
        SortField::DueAt => task.fields.due_at.unwrap_or(NO_DUE_DATE),
        SortField::Priority => task.fields.priority.rank(),
    }
}

/// Escape `%`, `_` and the escape character itself for a LIKE pattern.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// One page of the tasks the user may see (owned and shared with them, narrowed by `owner` and
/// `assignee`): up to `limit + 1` rows, so the caller knows whether another page follows.
pub fn list(conn: &mut DbConnection, user_id: &str, q: &TaskQuery) -> Result<Vec<Task>, DbError> {
    let shared_with_me = task_members::table
        .filter(task_members::user_id.eq(user_id.to_owned()))
        .select(task_members::task_id);
    let mut query = tasks::table.select(TaskRow::as_select()).into_boxed();
    query = match q.owner {
        OwnerFilter::Any => query.filter(
            tasks::user_id
                .eq(user_id.to_owned())
                .or(tasks::id.eq_any(shared_with_me)),
        ),
        OwnerFilter::Me => query.filter(tasks::user_id.eq(user_id.to_owned())),
        OwnerFilter::Others => query.filter(tasks::id.eq_any(shared_with_me)),
    };
    if q.assigned_to_me {
        query = query.filter(tasks::assignee_id.eq(user_id.to_owned()));
    }
    if let Some(status) = q.status {
        query = query.filter(tasks::status.eq(status.as_str()));
    }
    if let Some(p) = q.priority {
        query = query.filter(tasks::priority.eq(p.as_str()));
    }
    if let Some(c) = &q.category_id {
        query = query.filter(tasks::category_id.eq(c.clone()));
    }
    if let Some(before) = q.due_before {
        query = query.filter(tasks::due_at.lt(before));
    }
    if let Some(after) = q.due_after {
        query = query.filter(tasks::due_at.ge(after));
    }
    if let Some(text) = &q.q {
        query = query.filter(tasks::search_text.like(like_pattern(text)).escape('\\'));
    }
    if let Some(tag) = &q.tag {
        query = query.filter(
            // Not narrowed to the caller's own tags: a shared task's tags are its owner's.
            tasks::id.eq_any(
                task_tags::table
                    .filter(task_tags::tag.eq(tag.clone()))
                    .select(task_tags::task_id),
            ),
        );
    }
    // Keyset paging on (key, id), in the sort's direction for both.
    macro_rules! page {
        ($key:expr) => {{
            if let Some(Cursor { key, id, .. }) = &q.after {
                let (key, id) = (*key, id.clone());
                query = if q.sort.descending {
                    query.filter($key.lt(key).or($key.eq(key).and(tasks::id.lt(id))))
                } else {
                    query.filter($key.gt(key).or($key.eq(key).and(tasks::id.gt(id))))
                };
            }
            if q.sort.descending {
                query.order(($key.desc(), tasks::id.desc()))
            } else {
                query.order(($key.asc(), tasks::id.asc()))
            }
        }};
    }
    let query = match q.sort.field {
        SortField::CreatedAt => page!(tasks::created_at),
        SortField::UpdatedAt => page!(tasks::updated_at),
        SortField::DueAt => page!(tasks::due_sort),
        SortField::Priority => page!(tasks::priority_rank),
    };
    query
        .limit(q.limit + 1)
        .load::<TaskRow>(conn)?
        .into_iter()
        .map(Task::try_from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of new tasks is one multi-row statement on SQLite, not one INSERT per task
    /// inside a savepoint (what diesel does when a row may hold `DEFAULT`).
    #[test]
    fn a_batch_of_tasks_is_one_statement_on_sqlite() {
        let task = |title: &str| {
            let fields = TaskFields::titled(title, events::Priority::High);
            TaskRow::from(&Task::new("u", fields, 1))
        };
        let rows = vec![task("a"), task("b"), task("c")];
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(
            &diesel::insert_into(tasks::table).values(&rows),
        )
        .to_string();
        assert_eq!(sql.matches("INSERT").count(), 1, "{sql}");
        assert!(!sql.contains("BEGIN"), "{sql}");
    }
}
