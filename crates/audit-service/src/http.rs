//! REST API: `GET /api/audit/events` and `GET /api/audit/tasks/{task_id}/history`.
//! A user reads their own events only; a token with the admin role reads everyone's.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use service_kit::db::Database;
use service_kit::http::{Authenticated, Problem};

use crate::domain::{
    self, EventQuery, HistoryCursor, HistoryQuery, RawEventQuery, RawHistoryQuery,
};
use crate::storage::{self, AuditEntry};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/audit/events", web::get().to(list_events))
        .route(
            "/api/audit/tasks/{task_id}/history",
            web::get().to(task_history),
        );
}

#[derive(Debug, Serialize)]
pub struct AuditItem {
    pub event_id: String,
    pub topic: String,
    pub event_type: String,
    pub user_id: Option<String>,
    pub task_id: Option<String>,
    pub event_time: String,
    pub recorded_at: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub schema_id: Option<i64>,
    pub producer: Option<String>,
    pub trace_id: Option<String>,
    pub data: serde_json::Value,
}

impl From<AuditEntry> for AuditItem {
    fn from(e: AuditEntry) -> Self {
        Self {
            data: serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null),
            event_id: e.event_id,
            topic: e.topic,
            event_type: e.event_type,
            user_id: e.user_id,
            task_id: e.task_id,
            event_time: domain::rfc3339(e.event_time),
            recorded_at: domain::rfc3339(e.recorded_at),
            partition: e.kafka_partition,
            offset: e.kafka_offset,
            key: e.message_key,
            schema_id: e.schema_id,
            producer: e.producer,
            trace_id: e.trace_id,
        }
    }
}

#[derive(Debug, Serialize)]
struct Page {
    items: Vec<AuditItem>,
    next_cursor: Option<String>,
}

fn storage_problem(e: service_kit::db::DbError) -> Problem {
    if e.is_unavailable() {
        Problem::unavailable("the audit database is unavailable")
    } else {
        tracing::error!(error = %e, "audit query failed");
        Problem::internal()
    }
}

fn scope(auth: &Authenticated) -> Option<String> {
    (!auth.is_admin()).then(|| auth.user_id().to_owned())
}

async fn list_events(
    auth: Authenticated,
    db: web::Data<Database>,
    query: web::Query<RawEventQuery>,
) -> Result<HttpResponse, Problem> {
    let query = EventQuery::try_from(query.into_inner())?;
    let user = scope(&auth);
    let limit = query.limit;
    let rows = db
        .run(move |conn| storage::list(conn, user.as_deref(), &query))
        .await
        .map_err(storage_problem)?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| domain::event_cursor(r.seq)))
        .flatten();
    Ok(HttpResponse::Ok().json(Page {
        items: rows.into_iter().map(AuditItem::from).collect(),
        next_cursor,
    }))
}

async fn task_history(
    auth: Authenticated,
    db: web::Data<Database>,
    path: web::Path<String>,
    query: web::Query<RawHistoryQuery>,
) -> Result<HttpResponse, Problem> {
    let task_id = domain::task_id(&path.into_inner())?;
    let query = HistoryQuery::try_from(query.into_inner())?;
    let user = scope(&auth);
    let limit = query.limit;
    let first_page = query.after.is_none();
    let rows = db
        .run(move |conn| {
            // A collaborator reads the whole history of a task shared with them, for as long
            // as it is; everyone else only their own events.
            let user = match user {
                Some(u) if storage::is_collaborator(conn, &u, &task_id)? => None,
                other => other,
            };
            storage::history(conn, user.as_deref(), &task_id, &query)
        })
        .await
        .map_err(storage_problem)?;
    // Someone else's task and a task that does not exist look the same: 404.
    if rows.is_empty() && first_page {
        return Err(Problem::not_found("task history"));
    }
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| {
            rows.last().map(|r| {
                HistoryCursor {
                    event_time: r.event_time,
                    seq: r.seq,
                }
                .encode()
            })
        })
        .flatten();
    Ok(HttpResponse::Ok().json(Page {
        items: rows.into_iter().map(AuditItem::from).collect(),
        next_cursor,
    }))
}
